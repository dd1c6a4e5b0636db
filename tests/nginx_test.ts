// The README's nginx configuration, run for real: Debian's nginx in the foreground with its own
// configuration in a temporary directory, on a free port, in front of the real server. Checks
// that a WebSocket connects through it, that --trusted-proxy turns X-Real-IP into
// remoteAddress, and that a quiet connection outlives proxy_read_timeout thanks to our pings
// (timeouts shortened so that this runs in seconds). nginx is stopped by its PID.

import assert from "node:assert/strict";
import { closeWs, connectWs } from "./support/ws_client.ts";
import { startServer } from "./support/server_process.ts";
import { toolFor } from "./support/tools.ts";

const README = new URL("../README.md", import.meta.url).pathname;
const FIXTURE = new URL("./fixtures/address_handlers.ts", import.meta.url).pathname;
/** Shortened from the README's 60s so that the test runs in seconds. */
const READ_TIMEOUT_S = 2;
/** Far below READ_TIMEOUT_S: the pings keep nginx reading from the server. */
const PING_INTERVAL = "500ms";
/** A client address other than nginx's own, so that X-Real-IP is seen to be used. */
const CLIENT_ADDRESS = "127.0.0.2";
const START_BOUND_MS = 10_000;

const nginx = toolFor("nginx", "nginx_test: the README's nginx configuration");

/** The README's `location` block, as a user would paste it. */
async function readmeLocation(): Promise<string> {
  const text = await Deno.readTextFile(README);
  const block = /```nginx\n([\s\S]*?)```/.exec(text)?.[1];
  assert.ok(block, "README has an nginx block");
  assert.ok(block.includes("proxy_pass http://127.0.0.1:9000;"), block);
  assert.ok(block.includes(`proxy_read_timeout 60s;`), block);
  return block;
}

/** The README's block, moved to `path` in front of `port`, with the shortened timeout. */
function location(block: string, { path, port }: { path: string; port: number }): string {
  return block
    .replace("location /push {", `location ${path} {`)
    .replace("http://127.0.0.1:9000", `http://127.0.0.1:${port}`)
    .replace("proxy_read_timeout 60s;", `proxy_read_timeout ${READ_TIMEOUT_S}s;`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

interface Nginx {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground; resolves once its worker runs (its sockets are bound). */
async function startNginx(dir: string, locations: string[]): Promise<Nginx> {
  const port = freePort();
  const conf = `${dir}/nginx.conf`;
  await Deno.writeTextFile(
    conf,
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
${locations.join("\n")}
  }
}
`,
  );
  // Run as root, nginx's workers switch to an unprivileged user, who must reach the dir.
  await Deno.chmod(dir, 0o755);
  const child = new Deno.Command(nginx!, {
    args: ["-e", "stderr", "-p", dir, "-c", conf, "-g", "daemon off;"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), START_BOUND_MS);
  try {
    while (!log.includes("start worker process")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`nginx exited before starting: ${log}`);
      log += value;
    }
  } catch (e) {
    await child.status;
    throw e;
  } finally {
    clearTimeout(timer);
  }
  // Keep draining its log so that it never blocks on a full pipe.
  const drained = (async () => {
    for (;;) {
      const { done } = await reader.read();
      if (done) return;
    }
  })();
  return {
    port,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drained;
    },
  };
}

Deno.test({
  name: "the README's nginx location proxies WebSockets, passes the client's address, and our " +
    "pings keep a quiet connection past proxy_read_timeout",
  ignore: nginx === null,
  fn: async () => {
    const common = ["--trusted-proxy", "127.0.0.1", FIXTURE];
    // The control, `silent`, has the default pings (30s): nothing crosses nginx while quiet.
    const [pinging, silent] = await Promise.all([
      startServer({ args: ["--ping-interval", PING_INTERVAL, "--pong-timeout", "2s", ...common] }),
      startServer({ args: common }),
    ]);
    const dir = await Deno.makeTempDir({ prefix: "push-nginx-" });
    let proxy: Nginx | undefined;
    try {
      const block = await readmeLocation();
      proxy = await startNginx(dir, [
        location(block, { path: "/push", port: pinging.port }),
        location(block, { path: "/quiet", port: silent.port }),
      ]);
      const via = { localAddress: CLIENT_ADDRESS };

      const kept = await connectWs(proxy.port, "/push", via);
      let pings = 0;
      kept.ws.on("ping", () => pings++);
      // X-Real-IP from a trusted proxy becomes remoteAddress (nginx itself is 127.0.0.1).
      assert.equal(await kept.next(), `address ${CLIENT_ADDRESS}`);
      const control = await connectWs(proxy.port, "/quiet", via);
      assert.equal(await control.next(), `address ${CLIENT_ADDRESS}`);
      const quietSince = performance.now();

      // Without pings, nginx closes the quiet connection after proxy_read_timeout.
      const cut = await control.closed;
      const cutAfter = performance.now() - quietSince;
      assert.equal(cut.code, 1006, "nginx drops the TCP connection without a close frame");
      assert.ok(cutAfter >= READ_TIMEOUT_S * 1000 * 0.9, `cut after ${cutAfter} ms`);

      // With pings, the connection that was just as quiet is still open, and works.
      assert.ok(pings >= 2, `the server's pings crossed nginx (${pings})`);
      assert.equal(kept.ws.readyState, kept.ws.OPEN, "still open past proxy_read_timeout");
      kept.ws.send("still here");
      assert.equal(await kept.next(), "still here");
      await closeWs(kept);
    } finally {
      await proxy?.stop();
      await Deno.remove(dir, { recursive: true });
      await pinging.stop();
      await silent.stop();
    }
  },
});
