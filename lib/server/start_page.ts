// Owns the start page the public port serves at / in the embedded default: a page a newcomer
// opens in a browser to see FIFO lines arrive, with the connection state and why it closed.
// Self-contained (no external assets), so it works on a machine with no network.

/** The page's HTML. It connects to the server that served it, on the same host and port. */
export const START_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>push-server</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 50rem; padding: 0 1rem; }
  #state { padding: .3rem .6rem; border-radius: .3rem; background: #eee; display: inline-block; }
  #state.open { background: #d4f4d4; } #state.closed { background: #f8d7d7; }
  ol { font-family: ui-monospace, monospace; padding-left: 2.5rem; }
  li { white-space: pre-wrap; word-break: break-all; border-bottom: 1px solid #f0f0f0; }
  code { background: #f4f4f4; padding: 0 .25rem; }
</style>
</head>
<body>
<h1>push-server</h1>
<p>Connection: <span id="state">connecting</span></p>
<p>Write a line into the FIFO and it appears below, for example
<code>echo hello &gt; push.fifo</code>.</p>
<ol id="messages"></ol>
<script type="module">
const state = document.getElementById("state");
const list = document.getElementById("messages");
const MAX_SHOWN = 200;
let delay = 500;
function show(text, cls) { state.textContent = text; state.className = cls; }
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/");
  ws.onopen = () => { delay = 500; show("open", "open"); };
  ws.onmessage = (e) => {
    const li = document.createElement("li");
    li.textContent = typeof e.data === "string" ? e.data : "(binary message)";
    list.prepend(li);
    while (list.children.length > MAX_SHOWN) list.lastChild.remove();
  };
  ws.onclose = (e) => {
    const why = e.reason ? e.code + " " + e.reason : String(e.code);
    const wait = Math.round(Math.random() * delay);
    show("closed (" + why + "); reconnecting in " + wait + " ms", "closed");
    setTimeout(connect, wait);
    delay = Math.min(delay * 2, 30000);
  };
}
connect();
</script>
</body>
</html>
`;
