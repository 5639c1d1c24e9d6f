"""The built-in server modules, exposed to jabberd's module discovery."""

from jabberd.modules.builtin import *  # noqa: F401,F403
