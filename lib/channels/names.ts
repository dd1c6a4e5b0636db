// Owns the rule for channel names (and user ids used as addresses): which characters, how long.
//
// A channel name is 1 to 128 characters from `A-Z a-z 0-9 _ . : @ -`. The set needs no escaping
// in JSON, in URLs or in log lines, so a publication's frame can splice the name in as is, and
// `:` leaves room for namespaces such as `user:42`. Names are case-sensitive.

/** The longest channel name accepted, in characters (all of them ASCII, so also in bytes). */
export const MAX_CHANNEL_NAME_LENGTH = 128;

/** The characters a channel name may use, as a regular expression character class. */
export const CHANNEL_NAME_CHARACTERS = "A-Za-z0-9_.:@-";

const NAME = new RegExp(`^[${CHANNEL_NAME_CHARACTERS}]+$`);

/** Why `name` is not a valid channel name, or null when it is. */
export function channelNameError(name: unknown): string | null {
  if (typeof name !== "string") return "channel name is not a string";
  if (name.length === 0) return "channel name is empty";
  if (name.length > MAX_CHANNEL_NAME_LENGTH) {
    return `channel name is longer than ${MAX_CHANNEL_NAME_LENGTH} characters`;
  }
  if (!NAME.test(name)) return `channel name may only use [${CHANNEL_NAME_CHARACTERS}]`;
  return null;
}

/** Whether `name` is a valid channel name. */
export function isChannelName(name: unknown): name is string {
  return channelNameError(name) === null;
}
