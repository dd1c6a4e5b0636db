// Owns the rule that tells a FIFO command from a plain line, and parses the commands.
//
// The rule, applied to each line:
// 1. A line whose first non-blank character is not `{` is a plain line: broadcast to every
//    connection as the original server does.
// 2. A line whose first non-blank character is `{` must parse as JSON, or it is dropped (never
//    delivered half-formed: a truncated command starts with `{` and fails to parse).
// 3. A JSON object with one of the command keys `channel`, `user` or `disconnect` is a command:
//      {"channel":"news","data":…}      publish `data` to channel `news`
//      {"user":"42","data":…}           send `data` to every connection of user 42
//      {"disconnect":"42"}              close every connection of user 42 (close code 4006)
//      {"disconnect":{"user":"42"}}     the same
//    A command that breaks its shape (no `data`, a bad channel name, two command keys…) is
//    dropped with a reason, not broadcast.
// 4. Any other JSON object (and any JSON that is not an object) is a plain line: broadcast.

import { channelNameError, MAX_CHANNEL_NAME_LENGTH } from "./names.ts";

/** The longest user id accepted, in characters. */
export const MAX_USER_ID_LENGTH = MAX_CHANNEL_NAME_LENGTH;

/** The keys that make a JSON object a command. */
export const COMMAND_KEYS = ["channel", "user", "disconnect"] as const;

/** What a FIFO line asks for. `data` is the JSON text of the payload, ready to splice. */
export type LineCommand =
  | { readonly kind: "broadcast"; readonly text: string }
  | { readonly kind: "publish"; readonly channel: string; readonly data: string }
  | { readonly kind: "user"; readonly user: string; readonly data: string }
  | { readonly kind: "disconnect"; readonly user: string }
  | { readonly kind: "dropped"; readonly reason: string };

const OPEN_BRACE = "{";

function firstNonBlank(line: string): string {
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c !== " " && c !== "\t") return c;
  }
  return "";
}

function userError(user: unknown): string | null {
  if (typeof user !== "string" || user.length === 0 || user.length > MAX_USER_ID_LENGTH) {
    return `user must be a non-empty string of at most ${MAX_USER_ID_LENGTH} characters`;
  }
  return null;
}

/** Normalises a user id: numbers are accepted and become their decimal text. */
function userId(value: unknown): unknown {
  return typeof value === "number" && Number.isSafeInteger(value) ? String(value) : value;
}

/** Classifies one FIFO line (without its newline) by the rule above. Never throws. */
export function classifyLine(line: string): LineCommand {
  if (firstNonBlank(line) !== OPEN_BRACE) return { kind: "broadcast", text: line };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: "dropped", reason: "a line starting with { is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { kind: "broadcast", text: line };
  }
  const fields = value as Record<string, unknown>;
  const keys = COMMAND_KEYS.filter((k) => Object.hasOwn(fields, k));
  if (keys.length === 0) return { kind: "broadcast", text: line };
  if (keys.length > 1) {
    return { kind: "dropped", reason: `a command has one of ${keys.join(", ")}` };
  }
  switch (keys[0]) {
    case "channel": {
      const nameError = channelNameError(fields.channel);
      if (nameError !== null) return { kind: "dropped", reason: nameError };
      if (!Object.hasOwn(fields, "data")) return { kind: "dropped", reason: "publish has no data" };
      return {
        kind: "publish",
        channel: fields.channel as string,
        data: JSON.stringify(fields.data),
      };
    }
    case "user": {
      const user = userId(fields.user);
      const error = userError(user);
      if (error !== null) return { kind: "dropped", reason: error };
      if (!Object.hasOwn(fields, "data")) return { kind: "dropped", reason: "user has no data" };
      return { kind: "user", user: user as string, data: JSON.stringify(fields.data) };
    }
    case "disconnect": {
      const target = fields.disconnect;
      const user = userId(
        typeof target === "object" && target !== null && !Array.isArray(target)
          ? (target as Record<string, unknown>).user
          : target,
      );
      const error = userError(user);
      if (error !== null) return { kind: "dropped", reason: error };
      return { kind: "disconnect", user: user as string };
    }
  }
  return { kind: "dropped", reason: "unreachable" };
}
