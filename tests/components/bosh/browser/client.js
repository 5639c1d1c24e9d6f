// A Strophe.js client for tests/components/bosh/test_browser.py.  It reads
// its service URL, account and peer from the page's query string, logs in,
// chats with the peer (a slixmpp client that echoes), asks the runner for a
// network pause ("PAUSE" on the console), gets the message the peer sent
// meanwhile, chats again, and says "DONE" or "FAIL: why".
(function () {
  const { Strophe, $msg, $pres } = window.strophe || window;
  const params = new URLSearchParams(location.search);
  const service = params.get("service");
  const jid = params.get("jid");
  const password = params.get("password");
  const peer = params.get("peer");
  const log = (text) => {
    console.log(text);
    document.getElementById("log").textContent += text + "\n";
  };
  const fail = (why) => log("FAIL: " + why);

  const inbox = [];
  const waiting = [];
  function expect(body, seconds) {
    return new Promise((resolve, reject) => {
      const found = inbox.indexOf(body);
      if (found >= 0) {
        inbox.splice(found, 1);
        resolve(body);
        return;
      }
      const timer = setTimeout(() => reject(new Error("no '" + body + "' within " + seconds + " s")), seconds * 1000);
      waiting.push({ body, resolve: () => { clearTimeout(timer); resolve(body); } });
    });
  }

  const connection = new Strophe.Connection(service, { protocol: service.startsWith("ws") ? "ws" : undefined });
  connection.addHandler((message) => {
    const bodies = message.getElementsByTagName("body");
    if (bodies.length) {
      const text = Strophe.getText(bodies[0]);
      log("received: " + text);
      const i = waiting.findIndex((w) => w.body === text);
      if (i >= 0) waiting.splice(i, 1)[0].resolve();
      else inbox.push(text);
    }
    return true;
  }, null, "message");

  function say(text) {
    connection.send($msg({ to: peer, type: "chat" }).c("body").t(text));
  }

  async function chat() {
    say("hello");
    await expect("echo: hello", 20);
    say("pause-now");
    await expect("echo: pause-now", 20);
    log("PAUSE");
    await expect("while you were away", 90);
    say("back");
    await expect("echo: back", 30);
    log("DONE");
  }

  connection.connect(jid, password, (status, condition) => {
    const name = Object.keys(Strophe.Status).find((k) => Strophe.Status[k] === status);
    log("status: " + name + (condition ? " (" + condition + ")" : ""));
    if (status === Strophe.Status.CONNECTED) {
      log("bound as " + connection.jid);
      connection.send($pres());
      chat().catch((e) => fail(e.message));
    } else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) {
      fail(name + " " + (condition || ""));
    } else if (status === Strophe.Status.DISCONNECTED) {
      log("disconnected");
    }
  });
})();
