// The resume property of issue 12: for any interleaving of publishes, disconnects, reconnects,
// restarts (the SQLite store reopened from disk without a clean close) and reboots, a resuming
// client sees every publication exactly once and in order, or is told recovered:false — and
// recovered:false comes only when history could not cover the gap.

import assert from "node:assert/strict";
import fc from "fast-check";
import { ChannelLog } from "../../lib/store/channel_log.ts";
import type { Publication } from "../../lib/channels/history.ts";
import type { StreamPosition } from "../../lib/channels/protocol.ts";

const CHANNELS = ["a", "b"] as const;
const CLIENTS = 3;
const LIMITS = { maxCount: 6, maxAgeMs: 100, maxBytes: 600 };

type Step =
  | { kind: "publish"; channels: ("a" | "b")[]; dt: number }
  | { kind: "disconnect"; client: number }
  | { kind: "reconnect"; client: number }
  | { kind: "restart"; reboot: boolean }
  | { kind: "trim"; dt: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("publish" as const),
      channels: fc.array(fc.constantFrom(...CHANNELS), { minLength: 1, maxLength: 5 }),
      dt: fc.nat(40),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("disconnect" as const), client: fc.nat(CLIENTS - 1) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("reconnect" as const), client: fc.nat(CLIENTS - 1) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("restart" as const), reboot: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("trim" as const), dt: fc.nat(120) }) },
);

/** What one client knows of one channel. */
interface Cursor {
  position: StreamPosition | null;
  /** Index in the channel's publication list of the last one seen (or skipped by a loss). */
  seen: number;
  rebooted: boolean;
}

interface Client {
  connected: boolean;
  cursors: Map<string, Cursor>;
}

Deno.test("a resuming client sees each publication exactly once and in order, or recovered:false", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-resume-" });
  let run = 0;
  try {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const stateDir = `${dir}/${run++}`;
        let boot = 1_000_000;
        let now = 1000;
        let log = ChannelLog.open({ stateDir, limits: LIMITS, bootTime: boot }).log;
        assert.ok(log.durable);
        const published = new Map<string, Publication[]>(CHANNELS.map((c) => [c, []]));
        const clients: Client[] = Array.from({ length: CLIENTS }, () => ({
          connected: false,
          cursors: new Map(),
        }));

        function deliver(cursor: Cursor, channel: string, pub: Publication) {
          const list = published.get(channel)!;
          assert.deepStrictEqual(
            { ...pub },
            { ...list[cursor.seen + 1] },
            `client got ${channel}@${pub.offset} out of order`,
          );
          cursor.seen++;
          cursor.position = { epoch: pub.epoch, offset: pub.offset };
        }

        function connect(client: Client) {
          client.connected = true;
          for (const channel of CHANNELS) {
            const cursor = client.cursors.get(channel);
            const list = published.get(channel)!;
            const result = log.resume(channel, cursor?.position ?? null, now);
            const { decision } = result;
            if (cursor === undefined || decision.kind !== "replay") {
              if (cursor !== undefined) {
                // recovered:false must have a cause: a reboot, more missed than kept, or
                // the oldest missed one expired.
                const missed = list.slice(cursor.seen + 1);
                const cause = cursor.rebooted ||
                  missed.length > LIMITS.maxCount ||
                  (missed.length > 0 && now - missed[0].time > LIMITS.maxAgeMs);
                assert.ok(cause, `${channel}: recovered:false without cause`);
              }
              client.cursors.set(channel, {
                position: { epoch: decision.epoch, offset: decision.offset },
                seen: list.length - 1,
                rebooted: false,
              });
              continue;
            }
            for (const pub of result.replay) deliver(cursor, channel, pub);
            assert.equal(cursor.seen, list.length - 1, "replay ends at the last publication");
            cursor.position = { epoch: decision.epoch, offset: decision.offset };
            cursor.rebooted = false;
          }
        }

        for (const s of steps) {
          switch (s.kind) {
            case "publish": {
              now += s.dt;
              const pubs = log.publish(
                s.channels.map((channel) => ({ channel, data: `"${run}"` })),
                now,
              );
              for (const pub of pubs) {
                const list = published.get(pub.channel)!;
                list.push(pub);
                for (const client of clients) {
                  const cursor = client.cursors.get(pub.channel);
                  if (client.connected && cursor) deliver(cursor, pub.channel, pub);
                }
              }
              break;
            }
            case "disconnect":
              clients[s.client].connected = false;
              break;
            case "reconnect":
              if (!clients[s.client].connected) connect(clients[s.client]);
              break;
            case "restart": {
              // kill -9: the old handle is dropped without a clean close; a new one reads the
              // file. (It is closed afterwards only so the test does not leak handles.)
              if (s.reboot) boot += 3600;
              const old = log;
              log = ChannelLog.open({ stateDir, limits: LIMITS, bootTime: boot }).log;
              old.close();
              for (const client of clients) {
                client.connected = false;
                for (const cursor of client.cursors.values()) {
                  cursor.rebooted ||= s.reboot;
                }
              }
              break;
            }
            case "trim":
              now += s.dt;
              log.trim(now);
              break;
          }
        }
        // Everyone comes back at the end: each resumes or is told why not.
        for (const client of clients) if (!client.connected) connect(client);
        log.close();
      }),
      { numRuns: 100 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
