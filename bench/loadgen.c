// Load generator for bench/run.ts: an epoll WebSocket client that opens N connections to
// 127.0.0.1, drives one workload, counts and verifies every message it receives, and prints
// its timings (and the CPU time it and the server used) as one JSON object on stdout.
//
// Modes:
//   bcast  W1: writes lines into the server's FIFO; every client must receive every line, in
//          order. A warm-up burst, then --bursts timed bursts of --lines lines written in
//          one write(), then --waves single lines (per-client arrival latency).
//   echo   W2: each connection keeps --inflight masked text frames of --size bytes in flight
//          for --seconds; every echo is compared with what was sent.
//   big    W3: one connection sends --count binary messages of --size bytes, one at a time;
//          every echo is compared byte for byte.
//   idle   W4: opens --clients connections, waits --settle-ms, and reads the server's RSS.
//
// `--channel NAME` turns bcast into W1 on a channel: every connection offers push.v1 and
// subscribes to NAME, each FIFO line is the publish command {"channel":NAME,"data":"…"} of
// --line-bytes bytes (the same length as a plain line), and every publication
// ["NAME",offset,"…"] must carry the next offset and the next line (lib/channels/PROTOCOL.md).
//
// Build: gcc -O2 -o bench/out/loadgen bench/loadgen.c

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (1 << 20)
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xa

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

typedef struct {
  int fd;
  int state;
  uint8_t *rbuf;
  size_t rlen, rcap;
  // Output: either an owned buffer or an external one (the W3 frame), written from wpos.
  uint8_t *wbuf;
  size_t wlen, wpos, wcap;
  const uint8_t *ext;
  size_t extlen, extpos;
  int want_out;
  // W1
  int warm;
  int burst_id;      // burst being received
  int burst_next;    // next expected line index in that burst
  int waves_seen;
  long offset;       // --channel: the offset of the last publication received
  // W2/W3
  uint64_t sent, recvd;
} conn_t;

static struct {
  const char *mode;
  int port;
  int clients;
  int lines;
  int line_bytes;
  int bursts;
  int waves;
  int inflight;
  int size;
  double seconds;
  int count;
  int settle_ms;
  int concurrency;
  double timeout;
  int server_pid;
  const char *fifo;
  const char *channel;
} opt = {"bcast", 0, 1000, 500, 100, 3, 5, 8, 64, 3.0, 8, 1000, 128, 60.0, 0, NULL, NULL};

static conn_t *conns;
static int epfd;
static uint8_t *rdbuf;
static int n_open, n_failed, n_started;
static long errors;
static char first_error[256];
static uint32_t mask_seed = 0x9e3779b9u;
// W1 bookkeeping
static int cur_burst = -1, cur_wave = -1, burst_done_clients, wave_done_clients, warm_clients;
static double burst_t0, burst_last, wave_t0;
static double *arrivals;
// W2/W3 bookkeeping
static uint64_t total_recvd;
static int sending = 1;
static uint8_t *big_payload, *big_frame;
static size_t big_frame_len;
static double big_last;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/** utime + stime of the server, all threads, in seconds (0 when unknown). */
static double server_cpu(void) {
  if (!opt.server_pid) return 0;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", opt.server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  unsigned long ut = 0, st = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
  return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

static long server_rss_kb(void) {
  if (!opt.server_pid) return 0;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", opt.server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  long kb = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  }
  fclose(f);
  return kb;
}

static void fail(conn_t *c, const char *fmt, ...) {
  errors++;
  if (!first_error[0]) {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(first_error, sizeof first_error, "conn %ld: ", c ? (long)(c - conns) : -1L);
    vsnprintf(first_error + n, sizeof first_error - n, fmt, ap);
    va_end(ap);
  }
}

static void die(const char *msg) {
  printf("{\"ok\":false,\"error\":\"%s: %s\"}\n", msg, strerror(errno));
  exit(1);
}

static void set_events(conn_t *c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)(c - conns)};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl mod");
}

static void close_conn(conn_t *c) {
  if (c->state == ST_CLOSED) return;
  if (c->state == ST_OPEN) n_open--;
  c->state = ST_CLOSED;
  // RST instead of FIN: no TIME_WAIT pile-up across repetitions.
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c->fd);
  free(c->rbuf);
  free(c->wbuf);
  c->rbuf = c->wbuf = NULL;
}

static void flush_out(conn_t *c) {
  while (c->wpos < c->wlen) {
    ssize_t n = write(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos);
    if (n < 0) {
      if (errno == EAGAIN) goto blocked;
      fail(c, "write: %s", strerror(errno));
      close_conn(c);
      return;
    }
    c->wpos += n;
  }
  c->wpos = c->wlen = 0;
  while (c->ext && c->extpos < c->extlen) {
    ssize_t n = write(c->fd, c->ext + c->extpos, c->extlen - c->extpos);
    if (n < 0) {
      if (errno == EAGAIN) goto blocked;
      fail(c, "write: %s", strerror(errno));
      close_conn(c);
      return;
    }
    c->extpos += n;
  }
  c->ext = NULL;
  if (c->want_out) {
    c->want_out = 0;
    set_events(c, EPOLLIN);
  }
  return;
blocked:
  if (!c->want_out) {
    c->want_out = 1;
    set_events(c, EPOLLIN | EPOLLOUT);
  }
}

static void out_reserve(conn_t *c, size_t more) {
  if (c->wlen + more <= c->wcap) return;
  size_t cap = c->wcap ? c->wcap : 4096;
  while (cap < c->wlen + more) cap *= 2;
  c->wbuf = realloc(c->wbuf, cap);
  c->wcap = cap;
}

/** Appends one masked client frame (RFC 6455 §5.3) to the connection's output. */
static void queue_frame(conn_t *c, int opcode, const uint8_t *payload, size_t len) {
  out_reserve(c, len + 14);
  uint8_t *p = c->wbuf + c->wlen;
  size_t h = 0;
  p[h++] = 0x80 | opcode;
  if (len < 126) {
    p[h++] = 0x80 | len;
  } else if (len <= 0xffff) {
    p[h++] = 0x80 | 126;
    p[h++] = len >> 8;
    p[h++] = len & 0xff;
  } else {
    p[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) p[h++] = (uint64_t)len >> (8 * i);
  }
  mask_seed = mask_seed * 1664525u + 1013904223u;
  uint8_t key[4];
  memcpy(key, &mask_seed, 4);
  memcpy(p + h, key, 4);
  h += 4;
  for (size_t i = 0; i < len; i++) p[h + i] = payload[i] ^ key[i & 3];
  c->wlen += h + len;
}

// ---- workloads: what a received message means ----

static void hex8(uint8_t *out, uint32_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 7; i >= 0; i--, v >>= 4) out[i] = digits[v & 15];
}

/** "E", the connection and the sequence number in hex, then letters (no snprintf: hot). */
static void echo_payload(uint8_t *out, int conn, uint64_t seq, int size) {
  uint8_t head[17];
  head[0] = 'E';
  hex8(head + 1, (uint32_t)conn);
  hex8(head + 9, (uint32_t)seq);
  int n = size < 17 ? size : 17;
  memcpy(out, head, n);
  uint8_t c = (uint8_t)((seq + n) % 26);
  for (int i = n; i < size; i++) {
    out[i] = 'a' + c;
    if (++c == 26) c = 0;
  }
}

static void echo_send(conn_t *c) {
  uint8_t buf[65536];
  echo_payload(buf, (int)(c - conns), c->sent++, opt.size);
  queue_frame(c, OP_TEXT, buf, opt.size);
}

/** Parses n decimal digits (sscanf would cost more than the server's work per message). */
static int digits(const uint8_t *p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return 1;
}

// ---- --channel: push.v1 framing of W1 ----

/** The FIFO command around a channel line's payload: {"channel":"NAME","data":"payload"}. */
static const char CMD_HEAD[] = "{\"channel\":\"", CMD_MID[] = "\",\"data\":\"", CMD_TAIL[] = "\"}";

static int cmd_prefix_len(void) {
  return (int)(sizeof CMD_HEAD - 1 + strlen(opt.channel) + sizeof CMD_MID - 1);
}

/** Bytes of a line's payload (the tag and the letters): all of it for a plain line. */
static int payload_bytes(void) {
  return opt.channel ? opt.line_bytes - cmd_prefix_len() - (int)(sizeof CMD_TAIL - 1)
                     : opt.line_bytes;
}

/** Writes one FIFO line carrying `payload` (payload_bytes() long) at `l`; returns its length. */
static size_t make_line(char *l, const char *payload, size_t n) {
  size_t k = 0;
  if (opt.channel) {
    k += sprintf(l, "%s%s%s", CMD_HEAD, opt.channel, CMD_MID);
  }
  memcpy(l + k, payload, n);
  k += n;
  if (opt.channel) {
    memcpy(l + k, CMD_TAIL, sizeof CMD_TAIL - 1);
    k += sizeof CMD_TAIL - 1;
  }
  l[k++] = '\n';
  return k;
}

/**
 * Turns the publication ["NAME",offset,"payload"] at *p into its payload, checking the channel
 * and that the offset follows the last one; other messages (subscribed) are skipped. Returns 0
 * when the message is not a line to check.
 */
static int unwrap_publication(conn_t *c, const uint8_t **p, size_t *len) {
  const uint8_t *m = *p;
  size_t n = *len, name = strlen(opt.channel);
  if (m[0] == '{') {
    if (!memmem(m, n, "\"type\":\"subscribed\"", 19)) fail(c, "unexpected %.60s", m);
    return 0;
  }
  if (n < name + 8 || m[0] != '[' || m[1] != '"' || memcmp(m + 2, opt.channel, name) != 0 ||
      m[2 + name] != '"' || m[3 + name] != ',') {
    fail(c, "not a publication on %s: %.60s", opt.channel, m);
    return 0;
  }
  size_t i = 4 + name;
  long offset = 0;
  while (i < n && m[i] >= '0' && m[i] <= '9') offset = offset * 10 + (m[i++] - '0');
  if (i + 3 > n || m[i] != ',' || m[i + 1] != '"' || m[n - 2] != '"' || m[n - 1] != ']') {
    fail(c, "malformed publication %.60s", m);
    return 0;
  }
  if (c->offset && offset != c->offset + 1) {
    fail(c, "offset %ld after %ld", offset, c->offset);
    return 0;
  }
  c->offset = offset;
  *p = m + i + 2;
  *len = n - i - 4;
  return 1;
}

static void on_message(conn_t *c, int opcode, const uint8_t *p, size_t len, double t) {
  if (opcode == OP_PING) {
    queue_frame(c, OP_PONG, p, len);
    return;
  }
  if (opcode == OP_PONG) return;
  if (opcode == OP_CLOSE) {
    fail(c, "server sent close %d", len >= 2 ? (p[0] << 8 | p[1]) : 1005);
    close_conn(c);
    return;
  }
  if (opt.mode[0] == 'b' && opt.mode[1] == 'c') {  // bcast
    if (opcode != OP_TEXT || len == 0) return fail(c, "unexpected opcode %d", opcode);
    if (opt.channel && !unwrap_publication(c, &p, &len)) return;
    if (p[0] == 'W') {
      if (!c->warm++) warm_clients++;
      return;
    }
    if ((int)len != payload_bytes()) return fail(c, "line of %zu bytes", len);
    int id = 0, seq = 0;
    if (p[0] == 'B' && digits(p + 1, 4, &id) && p[5] == ':' && digits(p + 6, 7, &seq)) {
      if (id != cur_burst || id != c->burst_id || seq != c->burst_next) {
        return fail(c, "burst %d line %d, expected burst %d line %d", id, seq, c->burst_id,
                    c->burst_next);
      }
      if (++c->burst_next == opt.lines) {
        c->burst_id++;
        c->burst_next = 0;
        burst_done_clients++;
        burst_last = t;
      }
    } else if (p[0] == 'V' && digits(p + 1, 7, &seq)) {
      if (seq != c->waves_seen || seq != cur_wave) {
        return fail(c, "wave %d, expected %d", seq, c->waves_seen);
      }
      c->waves_seen++;
      arrivals[wave_done_clients++] = t - wave_t0;
    } else {
      fail(c, "unexpected line %.20s", p);
    }
    return;
  }
  if (opt.mode[0] == 'e') {  // echo
    uint8_t want[65536];
    echo_payload(want, (int)(c - conns), c->recvd, opt.size);
    if (opcode != OP_TEXT || (int)len != opt.size || memcmp(want, p, len) != 0) {
      return fail(c, "echo %llu differs", (unsigned long long)c->recvd);
    }
    c->recvd++;
    total_recvd++;
    if (sending) echo_send(c);
    return;
  }
  if (opt.mode[0] == 'b') {  // big
    if (opcode != OP_BINARY || (int)len != opt.size || memcmp(big_payload, p, len) != 0) {
      return fail(c, "big echo %llu differs", (unsigned long long)c->recvd);
    }
    c->recvd++;
    total_recvd++;
    big_last = t;
    if ((int)c->sent < opt.count) {
      c->sent++;
      c->ext = big_frame;
      c->extlen = big_frame_len;
      c->extpos = 0;
    }
    return;
  }
  fail(c, "unexpected message in idle mode");
}

/** Parses every complete frame in p[0..len); returns the bytes used. */
static size_t parse_frames(conn_t *c, const uint8_t *p, size_t len, double t) {
  size_t pos = 0;
  while (c->state == ST_OPEN && len - pos >= 2) {
    const uint8_t *f = p + pos;
    size_t avail = len - pos, h = 2;
    uint64_t plen = f[1] & 0x7f;
    if (f[1] & 0x80) {
      fail(c, "masked server frame");
      close_conn(c);
      return len;
    }
    if (plen == 126) {
      if (avail < 4) break;
      plen = (f[2] << 8) | f[3];
      h = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = (plen << 8) | f[2 + i];
      h = 10;
    }
    if (!(f[0] & 0x80)) {
      fail(c, "fragmented server message");
      close_conn(c);
      return len;
    }
    if (avail < h + plen) {
      if (c->rcap < h + plen) {  // reserve the whole frame once
        c->rbuf = realloc(c->rbuf, h + plen);
        c->rcap = h + plen;
      }
      break;
    }
    on_message(c, f[0] & 0x0f, f + h, plen, t);
    pos += h + plen;
  }
  return pos;
}

static void feed(conn_t *c, const uint8_t *data, size_t n, double t) {
  if (c->rlen == 0) {
    size_t used = parse_frames(c, data, n, t);
    if (c->state != ST_OPEN || used == n) return;
    size_t rest = n - used;
    if (c->rcap < rest) {
      c->rbuf = realloc(c->rbuf, rest < 4096 ? 4096 : rest);
      c->rcap = rest < 4096 ? 4096 : rest;
    }
    memcpy(c->rbuf, data + used, rest);
    c->rlen = rest;
    return;
  }
  if (c->rcap < c->rlen + n) {
    size_t cap = c->rcap * 2 > c->rlen + n ? c->rcap * 2 : c->rlen + n;
    c->rbuf = realloc(c->rbuf, cap);
    c->rcap = cap;
  }
  memcpy(c->rbuf + c->rlen, data, n);
  c->rlen += n;
  size_t used = parse_frames(c, c->rbuf, c->rlen, t);
  if (c->state != ST_OPEN) return;
  memmove(c->rbuf, c->rbuf + used, c->rlen - used);
  c->rlen -= used;
}

// ---- connecting ----

static const char REQUEST[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
static const char PUSH_V1_REQUEST[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: push.v1\r\n\r\n";
// RFC 6455 §1.3: the accept value for the key above.
static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static void start_connect(int i) {
  conn_t *c = &conns[i];
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket (is ulimit -n high enough?)");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->state = ST_CONNECTING;
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    die("connect");
  }
  struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) die("epoll_ctl add");
  n_started++;
}

static void on_handshake_data(conn_t *c, const uint8_t *data, size_t n, double t) {
  if (c->rcap < c->rlen + n + 1) {
    c->rcap = c->rlen + n + 1;
    c->rbuf = realloc(c->rbuf, c->rcap);
  }
  memcpy(c->rbuf + c->rlen, data, n);
  c->rlen += n;
  c->rbuf[c->rlen] = 0;
  char *end = strstr((char *)c->rbuf, "\r\n\r\n");
  if (!end) return;
  if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0 || !strcasestr((char *)c->rbuf, ACCEPT)) {
    fail(c, "handshake refused: %.40s", c->rbuf);
    n_failed++;
    close_conn(c);
    return;
  }
  size_t head = (uint8_t *)end + 4 - c->rbuf;
  size_t rest = c->rlen - head;
  c->state = ST_OPEN;
  n_open++;
  if (opt.channel) {
    char op[256];
    int n = snprintf(op, sizeof op, "{\"op\":\"subscribe\",\"channels\":{\"%s\":{}}}", opt.channel);
    queue_frame(c, OP_TEXT, (const uint8_t *)op, n);
    flush_out(c);
    if (c->state != ST_OPEN) return;
  }
  if (rest == 0) {
    c->rlen = 0;
    return;
  }
  uint8_t *tmp = malloc(rest);
  memcpy(tmp, c->rbuf + head, rest);
  c->rlen = 0;
  feed(c, tmp, rest, t);
  free(tmp);
}

/** Handles one epoll event for connection i. */
static void on_event(int i, uint32_t ev) {
  conn_t *c = &conns[i];
  if (c->state == ST_CLOSED) return;
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      fail(c, "connect: %s", strerror(err));
      n_failed++;
      close_conn(c);
      return;
    }
    const char *req = opt.channel ? PUSH_V1_REQUEST : REQUEST;
    if (write(c->fd, req, strlen(req)) != (ssize_t)strlen(req)) {
      fail(c, "handshake write");
      n_failed++;
      close_conn(c);
      return;
    }
    c->state = ST_HANDSHAKE;
    set_events(c, EPOLLIN);
    return;
  }
  if (ev & EPOLLOUT) flush_out(c);
  if (c->state == ST_CLOSED) return;
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t n = read(c->fd, rdbuf, READ_BUF);
    double t = now();
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) return;
      int was = c->state;
      fail(c, "server closed the connection (%s)", n < 0 ? strerror(errno) : "EOF");
      if (was == ST_HANDSHAKE) n_failed++;
      close_conn(c);
      return;
    }
    if (c->state == ST_HANDSHAKE) {
      on_handshake_data(c, rdbuf, n, t);
    } else {
      feed(c, rdbuf, n, t);
    }
    if (c->state == ST_OPEN && c->wpos < c->wlen) flush_out(c);
    if (c->state == ST_OPEN && c->ext && !c->want_out) flush_out(c);
  }
}

static void poll_once(int ms) {
  struct epoll_event evs[1024];
  int n = epoll_wait(epfd, evs, 1024, ms);
  if (n < 0 && errno != EINTR) die("epoll_wait");
  for (int k = 0; k < n; k++) on_event(evs[k].data.u32, evs[k].events);
}

typedef int (*pred_t)(void);
/** Runs the event loop until done() or the deadline; returns 1 when done. */
static int run_until(pred_t done, double deadline) {
  while (!done()) {
    double left = deadline - now();
    if (left <= 0) return 0;
    poll_once(left > 0.05 ? 50 : (int)(left * 1000) + 1);
  }
  return 1;
}

static int connecting_done(void) {
  while (n_started < opt.clients && n_started - n_open - n_failed < opt.concurrency) {
    start_connect(n_started);
  }
  return n_open + n_failed == opt.clients;
}

static double pause_until;
static int paused(void) { return now() >= pause_until; }
static void pause_ms(int ms) {
  pause_until = now() + ms / 1000.0;
  run_until(paused, pause_until + 1);
}

// ---- W1 ----

static int fifo_fd = -1;

static void fifo_write(const char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fifo_fd, buf + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("fifo write");
    }
    done += n;
  }
}

static void open_fifo(double deadline) {
  while ((fifo_fd = open(opt.fifo, O_WRONLY | O_NONBLOCK)) < 0) {
    if (errno != ENXIO || now() > deadline) die("open fifo");
    pause_ms(10);
  }
  int fl = fcntl(fifo_fd, F_GETFL);
  fcntl(fifo_fd, F_SETFL, fl & ~O_NONBLOCK);
}

static int all_warm(void) { return warm_clients >= n_open; }
static int burst_done(void) { return burst_done_clients >= n_open || n_open == 0; }
static int wave_done(void) { return wave_done_clients >= n_open || n_open == 0; }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
  if (n == 0) return 0;
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}

/** One burst: lines written in one write(); returns its duration, or -1 on timeout. */
static double run_burst(char *buf, size_t len, double deadline) {
  cur_burst++;
  for (int k = 0; k < opt.lines; k++) {
    char tag[32];
    snprintf(tag, sizeof tag, "B%04d:%07d", cur_burst, k);
    memcpy(buf + (size_t)k * (opt.line_bytes + 1) + (opt.channel ? cmd_prefix_len() : 0), tag, 13);
  }
  burst_done_clients = 0;
  burst_t0 = now();
  fifo_write(buf, len);
  if (!run_until(burst_done, deadline)) return -1;
  return burst_last - burst_t0;
}

static void mode_bcast(double deadline) {
  if (payload_bytes() < 14) opt.line_bytes += 14 - payload_bytes();
  open_fifo(deadline);
  char warm[256];
  size_t warm_len = make_line(warm, "W", 1);
  // Warm-up lines until every client has one: only then is each surely subscribed.
  double next = 0;
  while (!all_warm()) {
    if (now() > deadline) break;
    if (now() >= next) {
      fifo_write(warm, warm_len);
      next = now() + 0.05;
    }
    poll_once(10);
  }
  pause_ms(100);
  size_t len = (size_t)opt.lines * (opt.line_bytes + 1);
  char *buf = malloc(len + 1);
  char *letters = malloc(payload_bytes());
  memset(letters, 'x', payload_bytes());
  for (int k = 0; k < opt.lines; k++) {
    make_line(buf + (size_t)k * (opt.line_bytes + 1), letters, payload_bytes());
  }
  run_burst(buf, len, deadline);  // warm-up burst, not timed
  pause_ms(100);
  double total_t = 0, scpu = 0, lcpu = 0;
  double *rates = calloc(opt.bursts, sizeof(double));
  int done = 0;
  for (int b = 0; b < opt.bursts; b++) {
    double s0 = server_cpu(), l0 = self_cpu();
    double d = run_burst(buf, len, deadline);
    if (d < 0) break;
    scpu += server_cpu() - s0;
    lcpu += self_cpu() - l0;
    total_t += d;
    rates[b] = (double)n_open * opt.lines / d;
    done++;
    pause_ms(100);
  }
  arrivals = calloc(opt.clients, sizeof(double));
  double *p50s = calloc(opt.waves + 1, sizeof(double)), *maxs = calloc(opt.waves + 1, sizeof(double));
  int waves = 0;
  for (int w = 0; w < opt.waves && done == opt.bursts; w++) {
    pause_ms(200);
    char line[1024];
    snprintf(letters, payload_bytes(), "V%07d", w);
    letters[8] = 'x';
    make_line(line, letters, payload_bytes());
    cur_wave = w;
    wave_done_clients = 0;
    wave_t0 = now();
    fifo_write(line, opt.line_bytes + 1);
    if (!run_until(wave_done, deadline)) break;
    qsort(arrivals, wave_done_clients, sizeof(double), cmp_double);
    p50s[waves] = pct(arrivals, wave_done_clients, 0.5) * 1000;
    maxs[waves] = arrivals[wave_done_clients - 1] * 1000;
    waves++;
  }
  qsort(p50s, waves, sizeof(double), cmp_double);
  qsort(maxs, waves, sizeof(double), cmp_double);
  long expected = (long)opt.clients * opt.lines * opt.bursts;
  long got = (long)n_open * opt.lines * done;
  printf("{\"ok\":%s,\"mode\":\"bcast\",\"clients\":%d,\"open\":%d,\"lines\":%d,\"bursts\":%d,"
         "\"msgPerSec\":%.0f,\"burstSeconds\":%.6f,\"serverCpu\":%.3f,\"loadgenCpu\":%.3f,"
         "\"serverCpuNsPerMsg\":%.1f,"
         "\"waves\":%d,\"waveP50Ms\":%.2f,\"waveAllMs\":%.2f,\"expected\":%ld,\"received\":%ld,"
         "\"errors\":%ld,\"firstError\":\"%s\"}\n",
         (errors == 0 && got == expected && waves == opt.waves) ? "true" : "false", opt.clients,
         n_open, opt.lines, done, total_t > 0 ? (double)got / total_t : 0, total_t,
         total_t > 0 ? scpu / total_t : 0, total_t > 0 ? lcpu / total_t : 0,
         got > 0 ? scpu * 1e9 / got : 0, waves,
         waves ? pct(p50s, waves, 0.5) : 0, waves ? pct(maxs, waves, 0.5) : 0, expected, got,
         errors, first_error);
}

// ---- W2, W3, W4 ----

static double echo_end;
static int echo_time_up(void) { return now() >= echo_end; }
static int echo_drained(void) {
  for (int i = 0; i < opt.clients; i++) {
    if (conns[i].state == ST_OPEN && conns[i].recvd < conns[i].sent) return 0;
  }
  return 1;
}

static void mode_echo(double deadline) {
  double t0 = now(), s0 = server_cpu(), l0 = self_cpu();
  for (int i = 0; i < opt.clients; i++) {
    conn_t *c = &conns[i];
    if (c->state != ST_OPEN) continue;
    for (int k = 0; k < opt.inflight; k++) echo_send(c);
    flush_out(c);
  }
  echo_end = t0 + opt.seconds;
  run_until(echo_time_up, deadline);
  sending = 0;
  int drained = run_until(echo_drained, deadline);
  double t = now() - t0, scpu = server_cpu() - s0, lcpu = self_cpu() - l0;
  uint64_t sent = 0;
  for (int i = 0; i < opt.clients; i++) sent += conns[i].sent;
  printf("{\"ok\":%s,\"mode\":\"echo\",\"clients\":%d,\"open\":%d,\"msgPerSec\":%.0f,"
         "\"seconds\":%.3f,\"serverCpu\":%.3f,\"loadgenCpu\":%.3f,\"expected\":%llu,"
         "\"received\":%llu,\"errors\":%ld,\"firstError\":\"%s\"}\n",
         (errors == 0 && drained && n_open == opt.clients) ? "true" : "false", opt.clients, n_open,
         total_recvd / t, t, scpu / t, lcpu / t, (unsigned long long)sent,
         (unsigned long long)total_recvd, errors, first_error);
}

static int big_done(void) { return total_recvd >= (uint64_t)opt.count || n_open == 0; }

static void mode_big(double deadline) {
  size_t n = opt.size;
  big_payload = malloc(n);
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    big_payload[i] = x;
  }
  conn_t tmp = {0};
  queue_frame(&tmp, OP_BINARY, big_payload, n);
  big_frame = tmp.wbuf;
  big_frame_len = tmp.wlen;
  conn_t *c = &conns[0];
  double t0 = now(), s0 = server_cpu(), l0 = self_cpu();
  c->sent = 1;
  c->ext = big_frame;
  c->extlen = big_frame_len;
  c->extpos = 0;
  flush_out(c);
  int done = run_until(big_done, deadline);
  double t = big_last - t0, scpu = server_cpu() - s0, lcpu = self_cpu() - l0;
  printf("{\"ok\":%s,\"mode\":\"big\",\"size\":%d,\"count\":%d,\"MBps\":%.1f,\"seconds\":%.3f,"
         "\"serverCpu\":%.3f,\"loadgenCpu\":%.3f,\"expected\":%d,\"received\":%llu,"
         "\"errors\":%ld,\"firstError\":\"%s\"}\n",
         (errors == 0 && done && total_recvd == (uint64_t)opt.count) ? "true" : "false", opt.size,
         opt.count, t > 0 ? (double)total_recvd * n / 1e6 / t : 0, t, t > 0 ? scpu / t : 0,
         t > 0 ? lcpu / t : 0, opt.count, (unsigned long long)total_recvd, errors, first_error);
}

static int never(void) { return 0; }

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--mode")) opt.mode = v;
    else if (!strcmp(k, "--port")) opt.port = atoi(v);
    else if (!strcmp(k, "--clients")) opt.clients = atoi(v);
    else if (!strcmp(k, "--lines")) opt.lines = atoi(v);
    else if (!strcmp(k, "--line-bytes")) opt.line_bytes = atoi(v);
    else if (!strcmp(k, "--bursts")) opt.bursts = atoi(v);
    else if (!strcmp(k, "--waves")) opt.waves = atoi(v);
    else if (!strcmp(k, "--inflight")) opt.inflight = atoi(v);
    else if (!strcmp(k, "--size")) opt.size = atoi(v);
    else if (!strcmp(k, "--seconds")) opt.seconds = atof(v);
    else if (!strcmp(k, "--count")) opt.count = atoi(v);
    else if (!strcmp(k, "--settle-ms")) opt.settle_ms = atoi(v);
    else if (!strcmp(k, "--concurrency")) opt.concurrency = atoi(v);
    else if (!strcmp(k, "--timeout")) opt.timeout = atof(v);
    else if (!strcmp(k, "--server-pid")) opt.server_pid = atoi(v);
    else if (!strcmp(k, "--fifo")) opt.fifo = v;
    else if (!strcmp(k, "--channel")) opt.channel = v;
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (opt.mode[0] == 'e' && opt.size > 65536) opt.size = 65536;
  double deadline = now() + opt.timeout;
  // A hard bound as well: a server that stops reading its FIFO would block a write forever.
  alarm((unsigned)opt.timeout + 15);
  conns = calloc(opt.clients, sizeof(conn_t));
  rdbuf = malloc(READ_BUF);
  epfd = epoll_create1(0);
  long rss0 = server_rss_kb();
  double t0 = now(), s0 = server_cpu(), l0 = self_cpu();
  int connected = run_until(connecting_done, deadline);
  double hs_t = now() - t0, hs_scpu = server_cpu() - s0, hs_lcpu = self_cpu() - l0;
  if (!connected || n_open < opt.clients) {
    printf("{\"ok\":false,\"mode\":\"%s\",\"open\":%d,\"failed\":%d,\"error\":\"connecting: %s\"}\n",
           opt.mode, n_open, n_failed, first_error);
    return 1;
  }
  fprintf(stderr, "loadgen: %d connections open in %.3f s\n", n_open, hs_t);
  if (!strcmp(opt.mode, "bcast")) {
    mode_bcast(deadline);
  } else if (!strcmp(opt.mode, "echo")) {
    mode_echo(deadline);
  } else if (!strcmp(opt.mode, "big")) {
    mode_big(deadline);
  } else {
    pause_until = now() + opt.settle_ms / 1000.0;
    run_until(paused, deadline);
    long rss1 = server_rss_kb();
    printf("{\"ok\":%s,\"mode\":\"idle\",\"clients\":%d,\"open\":%d,\"handshakesPerSec\":%.0f,"
           "\"serverCpu\":%.3f,\"loadgenCpu\":%.3f,\"rssBeforeKb\":%ld,\"rssAfterKb\":%ld,"
           "\"kbPerConn\":%.2f,\"errors\":%ld,\"firstError\":\"%s\"}\n",
           errors == 0 ? "true" : "false", opt.clients, n_open, n_open / hs_t, hs_scpu / hs_t,
           hs_lcpu / hs_t, rss0, rss1, (double)(rss1 - rss0) / n_open, errors, first_error);
  }
  (void)never;
  for (int i = 0; i < opt.clients; i++) close_conn(&conns[i]);
  return 0;
}
