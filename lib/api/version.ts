// Owns the version string of push-server.

export const VERSION = "0.2.0";
