-- Prosody under benchmark: filled in by bench/servers.py (the dollar-sign placeholders).
-- Alike with jabberd.toml and ejabberd.yml: loopback only, one c2s port with
-- optional STARTTLS, the same self-signed EC certificate, no rate limits
-- (mod_limits is not loaded), a MUC component on conference.localhost.
run_as_root = true
pidfile = "$dir/prosody.pid"
data_path = "$datadir"
log = { { levels = { min = "warn" }, to = "file", filename = "$dir/prosody.log" } }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $c2s_port }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
component_ports = { }
admin_socket = "$dir/prosody.sock"
network_backend = "epoll"
network_settings = { tcp_backlog = 1024 }
modules_enabled = {
    "roster", "saslauth", "tls", "disco", "ping", "vcard", "private",
    "offline", "version", "time", "lastactivity", "posix",
}
modules_disabled = { "s2s", "limits", "c2s_limits" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
c2s_stanza_size_limit = 1048576
ssl = { certificate = "$cert"; key = "$key"; }

VirtualHost "localhost"

Component "conference.localhost" "muc"
    muc_room_locking = false
    restrict_room_creation = false
    max_history_messages = 20
