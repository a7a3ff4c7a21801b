/* The load generator's receive path in C: one epoll loop over the subscribers' sockets.
 *
 * Loaded by csink.py (ctypes), which also documents the API. One thread runs csink_run();
 * the Python side only adds sockets, reads counters and takes latency samples out of a ring.
 *
 * A delivery costs a share of one recvmsg and a byte scan for `"t":<digits>,"seq":<digits>`
 * (what wire.SAMPLE matches), on bytes de-framed per connection: HTTP/1.1 chunked SSE
 * bodies, raw bytes, or WebSocket server frames (Engine.IO pings get their pong here).
 * Latency is measured from the payload's `t` (CLOCK_REALTIME, ns) to the kernel's receive
 * stamp of the read (SO_TIMESTAMPNS: for TCP, the stamp of the last segment the read
 * consumed, so never earlier than the payload's own arrival); the generator's own lag is
 * the time from that stamp to the read returning in user space.
 *
 * Latency is sampled: only the connections added as *eager* are read as soon as they are
 * readable and give latency samples. The others (*lazy*) sit in a second epoll set that the
 * loop services every lazy_ns: one recvmsg then drains many deliveries, so one read and one
 * TCP window update serve many, which is what makes the loop far cheaper per delivery than
 * the servers it measures. Lazy connections still count every delivery, duplicate and gap,
 * and answer their pings (at most lazy_ns late).
 *
 * Every buffer is bounded: one read buffer and one scan buffer per sink, a 64-byte carry
 * per connection for a pattern split across reads, a fixed sample ring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { KIND_SSE_CHUNKED = 0, KIND_RAW = 1, KIND_WS = 2 };
enum { END_NONE = 0, END_EOF = 1, END_WS_CLOSE = 2, END_READ_ERROR = 3, END_PROTOCOL = 4,
       END_STREAM_DONE = 5, END_WRITE_ERROR = 6 };
enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_LAST_CR, CH_LAST_LF };

#define CARRY 64            /* > the longest pattern: 5 + 19 + 2 + 7 + 19 bytes */
#define MAX_DIGITS 19       /* fits an int64 */
#define GAPS 4              /* seq gaps kept exactly per connection; more are only counted */
#define WINDOW 1024         /* the last seqs per connection whose arrival is remembered, bit by bit */
#define READ_BUF (256 * 1024)
#define SCAN_BUF (64 * 1024)
#define EVENTS 256
#define READS_PER_WAKE 4    /* a busy socket cannot starve the others */

typedef struct {            /* csink.py: Totals */
    int64_t deliveries;     /* payloads counted (first arrival of a seq on a connection) */
    int64_t duplicates;     /* seq <= the last one seen on that connection */
    int64_t samples;        /* latency samples written to the ring (monotonic index) */
    int64_t dropped;        /* samples not written: the ring was full */
    int64_t reads, bytes, unstamped, ended, pongs, wakeups;
    int64_t lazy_services;  /* passes over the lazy set */
    int64_t lazy_reads;     /* reads of lazy connections (included in reads) */
    int64_t lazy_max_bytes; /* the most bytes one lazy connection had waiting at a pass */
} totals_t;

typedef struct {            /* csink.py: ConnStats */
    int64_t deliveries;     /* first arrivals of a seq */
    int64_t duplicates;     /* seqs seen twice, or so late that they had been given up (WINDOW) */
    int64_t last_seq;       /* the highest seq seen */
    uint64_t seen[WINDOW / 64]; /* seq s in (last_seq - WINDOW, last_seq] arrived: bit s % WINDOW */
    int64_t gap_first[GAPS], gap_last[GAPS]; /* missing seqs older than the window, as ranges */
    int64_t gaps;           /* ranges recorded in gap_first/gap_last */
    int64_t gap_more;       /* seqs missing in further ranges */
    int32_t ended;          /* END_* */
    int32_t kind;
} conn_stats_t;

typedef struct {
    conn_stats_t st;
    int fd;
    int eager;              /* read at once and sampled for latency; else in the lazy set */
    int64_t stamp, lag;     /* of the read being parsed */
    uint8_t carry[CARRY];
    uint32_t carry_len;
    /* chunked */
    int ch_state, ch_digits;
    uint64_t ch_left;
    /* WebSocket */
    uint8_t hdr[14];
    uint32_t hdr_len, hdr_need;
    int in_payload, opcode, collect;
    uint64_t ws_left;
    uint8_t ctl[125];
    uint32_t ctl_len;
} conn_t;

typedef struct {
    int epfd, lazy_epfd;
    int64_t lazy_ns, next_lazy; /* the lazy set's period, and when it is next due (CLOCK_MONOTONIC) */
    int stop;
    int32_t nconns, max_conns;
    conn_t *conns;
    int64_t *lat, *lag;
    int64_t cap;            /* ring size, in samples */
    int64_t consumed;       /* samples the Python side has taken (it writes this) */
    totals_t t;
    uint8_t *buf, *scan;
} sink_t;

static int64_t ns_of(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec; }

static void end_conn(sink_t *s, conn_t *c, int why) {
    if (c->st.ended) return;
    __atomic_store_n(&c->st.ended, why, __ATOMIC_RELEASE);
    epoll_ctl(c->eager ? s->epfd : s->lazy_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    __atomic_add_fetch(&s->t.ended, 1, __ATOMIC_RELEASE);
}

static void gap(conn_stats_t *st, int64_t first, int64_t last) {
    if (st->gaps && st->gap_last[st->gaps - 1] == first - 1) {
        st->gap_last[st->gaps - 1] = last;
    } else if (st->gaps < GAPS) {
        st->gap_first[st->gaps] = first;
        st->gap_last[st->gaps] = last;
        st->gaps++;
    } else {
        st->gap_more += last - first + 1;
    }
}

#define SEEN(st, q) ((st)->seen[((q) % WINDOW) / 64] >> ((q) % 64) & 1)
#define MARK(st, q) ((st)->seen[((q) % WINDOW) / 64] |= (uint64_t)1 << ((q) % 64))
#define CLEAR(st, q) ((st)->seen[((q) % WINDOW) / 64] &= ~((uint64_t)1 << ((q) % 64)))

/* Whether seq arrives for the first time. Publishes can reach the server out of order (the SSE
 * publisher POSTs through a pool of connections), so a seq below the highest one seen fills its
 * hole if it is still within WINDOW; a seq that leaves the window unseen becomes a gap. */
static int first_arrival(conn_stats_t *st, int64_t seq) {
    int64_t last = st->last_seq;
    if (seq <= last) {
        if (seq <= last - WINDOW || SEEN(st, seq)) return 0;
        MARK(st, seq);
        return 1;
    }
    if (seq - last > WINDOW) {
        for (int64_t q = last - WINDOW + 1; q <= last; q++)
            if (q > 0 && !SEEN(st, q)) gap(st, q, q);
        gap(st, last + 1, seq - WINDOW);
        memset(st->seen, 0, sizeof st->seen);
    } else {
        for (int64_t q = last + 1; q < seq; q++) {  /* q - WINDOW leaves, q enters unseen */
            if (q - WINDOW > 0 && !SEEN(st, q)) gap(st, q - WINDOW, q - WINDOW);
            CLEAR(st, q);
        }
        if (seq - WINDOW > 0 && !SEEN(st, seq)) gap(st, seq - WINDOW, seq - WINDOW);
    }
    MARK(st, seq);
    st->last_seq = seq;
    return 1;
}

static void deliver(sink_t *s, conn_t *c, int64_t t, int64_t seq) {
    conn_stats_t *st = &c->st;
    if (!first_arrival(st, seq)) {
        st->duplicates++;
        s->t.duplicates++;
        return;
    }
    st->deliveries++;
    int64_t k = s->t.samples;
    if (!c->eager) {
        __atomic_store_n(&s->t.deliveries, s->t.deliveries + 1, __ATOMIC_RELEASE);
        return;
    }
    if (k - __atomic_load_n(&s->consumed, __ATOMIC_ACQUIRE) < s->cap) {
        s->lat[k % s->cap] = c->stamp - t;
        s->lag[k % s->cap] = c->lag;
        __atomic_store_n(&s->t.samples, k + 1, __ATOMIC_RELEASE);
    } else {
        s->t.dropped++;
    }
    __atomic_store_n(&s->t.deliveries, s->t.deliveries + 1, __ATOMIC_RELEASE);
}

/* Digits at b[*i]: 1 complete (a non-digit follows), 0 the buffer ends first, -1 no number. */
static int number(const uint8_t *b, size_t len, size_t *i, int64_t *out) {
    size_t j = *i;
    int64_t v = 0;
    while (j < len && b[j] >= '0' && b[j] <= '9') {
        if (j - *i == MAX_DIGITS) return -1;
        v = v * 10 + (b[j] - '0');
        j++;
    }
    if (j == len) return 0;
    if (j == *i) return -1;
    *i = j;
    *out = v;
    return 1;
}

/* `lit` at b[*i]: 1 matched, 0 the buffer ends inside it, -1 mismatch. */
static int literal(const uint8_t *b, size_t len, size_t *i, const char *lit) {
    for (size_t k = 0; lit[k]; k++) {
        if (*i + k == len) return 0;
        if (b[*i + k] != (uint8_t)lit[k]) return -1;
    }
    *i += strlen(lit);
    return 1;
}

static int space(const uint8_t *b, size_t len, size_t *i) {
    if (*i == len) return 0;
    if (b[*i] == ' ') ++*i;
    return 1;
}

/* After `"t":` at b[*i]: the rest of the pair, as number()/literal() answer. */
static int pair(const uint8_t *b, size_t len, size_t *i, int64_t *t, int64_t *seq) {
    int r;
    if ((r = space(b, len, i)) <= 0 || (r = number(b, len, i, t)) <= 0) return r;
    if ((r = literal(b, len, i, ",")) <= 0 || (r = space(b, len, i)) <= 0) return r;
    if ((r = literal(b, len, i, "\"seq\":")) <= 0 || (r = space(b, len, i)) <= 0) return r;
    return number(b, len, i, seq);
}

/* Every complete pair in b; returns where the bytes worth keeping start (an incomplete pair,
 * else the end of the last pair). */
static size_t scan_region(sink_t *s, conn_t *c, const uint8_t *b, size_t len) {
    size_t pos = 0, keep = 0;
    while (pos + 4 <= len) {
        const uint8_t *q = memmem(b + pos, len - pos, "\"t\":", 4);
        if (q == NULL) break;
        size_t i = (size_t)(q - b) + 4;
        int64_t t = 0, seq = 0;
        int r = pair(b, len, &i, &t, &seq);
        if (r == 0) return (size_t)(q - b);
        if (r < 0) {
            pos = (size_t)(q - b) + 1;
            continue;
        }
        deliver(s, c, t, seq);
        pos = keep = i;
    }
    return keep;
}

/* Payload bytes of one connection's stream, in order, however they were split. */
static void scan(sink_t *s, conn_t *c, const uint8_t *p, size_t n) {
    while (n > 0) {
        size_t take = n < SCAN_BUF - c->carry_len ? n : SCAN_BUF - c->carry_len;
        const uint8_t *b = p;
        size_t len = take;
        if (c->carry_len) {
            memcpy(s->scan, c->carry, c->carry_len);
            memcpy(s->scan + c->carry_len, p, take);
            b = s->scan;
            len = c->carry_len + take;
        }
        size_t keep = scan_region(s, c, b, len);
        if (len > CARRY - 1 && keep < len - (CARRY - 1)) keep = len - (CARRY - 1);
        c->carry_len = (uint32_t)(len - keep);
        memmove(c->carry, b + keep, c->carry_len);
        p += take;
        n -= take;
    }
}

static int hexval(uint8_t b) {
    if (b >= '0' && b <= '9') return b - '0';
    if (b >= 'a' && b <= 'f') return b - 'a' + 10;
    if (b >= 'A' && b <= 'F') return b - 'A' + 10;
    return -1;
}

static void chunked(sink_t *s, conn_t *c, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n && !c->st.ended) {
        uint8_t b = p[i];
        switch (c->ch_state) {
        case CH_SIZE: {
            int v = hexval(b);
            if (v >= 0 && c->ch_digits < 15) {
                c->ch_left = c->ch_left * 16 + (uint64_t)v;
                c->ch_digits++;
            } else if (c->ch_digits && (b == ';' || b == ' ')) {
                c->ch_state = CH_EXT;
            } else if (c->ch_digits && b == '\r') {
                c->ch_state = CH_SIZE_LF;
            } else {
                end_conn(s, c, END_PROTOCOL);
            }
            i++;
            break;
        }
        case CH_EXT: {
            const uint8_t *cr = memchr(p + i, '\r', n - i);
            if (cr == NULL) {
                i = n;
            } else {
                i = (size_t)(cr - p) + 1;
                c->ch_state = CH_SIZE_LF;
            }
            break;
        }
        case CH_SIZE_LF:
            if (b != '\n') end_conn(s, c, END_PROTOCOL);
            c->ch_state = c->ch_left ? CH_DATA : CH_LAST_CR;
            i++;
            break;
        case CH_DATA: {
            size_t take = c->ch_left < n - i ? (size_t)c->ch_left : n - i;
            scan(s, c, p + i, take);
            i += take;
            c->ch_left -= take;
            if (!c->ch_left) c->ch_state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_LAST_CR:
            if (b != '\r') end_conn(s, c, END_PROTOCOL);
            c->ch_state++;
            i++;
            break;
        case CH_DATA_LF:
            if (b != '\n') end_conn(s, c, END_PROTOCOL);
            c->ch_state = CH_SIZE;
            c->ch_digits = 0;
            i++;
            break;
        case CH_LAST_LF:
            end_conn(s, c, b == '\n' ? END_STREAM_DONE : END_PROTOCOL);
            i++;
            break;
        }
    }
}

/* A client frame: masked with a zero key (as wire.ws_frame), so the payload goes as is. */
static void ws_send(sink_t *s, conn_t *c, int opcode, const uint8_t *payload, uint32_t len) {
    uint8_t frame[6 + 125];
    frame[0] = (uint8_t)(0x80 | opcode);
    frame[1] = (uint8_t)(0x80 | len);
    memset(frame + 2, 0, 4);
    memcpy(frame + 6, payload, len);
    ssize_t w = send(c->fd, frame, 6 + len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w != (ssize_t)(6 + len)) {
        end_conn(s, c, END_WRITE_ERROR);  /* a partial control frame would corrupt the stream */
        return;
    }
    s->t.pongs++;
}

static void ws_frame_done(sink_t *s, conn_t *c) {
    if (!c->collect) return;
    if (c->opcode == 0x1 && c->ctl_len == 1 && c->ctl[0] == '2') {
        ws_send(s, c, 0x1, (const uint8_t *)"3", 1);  /* Engine.IO ping -> pong */
    } else if (c->opcode == 0x9) {
        ws_send(s, c, 0xA, c->ctl, c->ctl_len);
    } else if (c->opcode == 0x8) {
        end_conn(s, c, END_WS_CLOSE);
    }
}

static void ws(sink_t *s, conn_t *c, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n && !c->st.ended) {
        if (!c->in_payload) {
            while (i < n && c->hdr_len < c->hdr_need) c->hdr[c->hdr_len++] = p[i++];
            if (c->hdr_len < c->hdr_need) return;
            if (c->hdr_need == 2) {
                uint8_t l7 = c->hdr[1] & 0x7F;
                if ((c->hdr[1] & 0x80) || (c->hdr[0] & 0x70)) {  /* masked, or an extension's bits */
                    end_conn(s, c, END_PROTOCOL);
                    return;
                }
                c->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
                if (c->hdr_need > 2) continue;
            }
            uint64_t len = c->hdr[1] & 0x7F;
            if (len >= 126) {
                len = 0;
                for (uint32_t k = 2; k < c->hdr_need; k++) len = (len << 8) | c->hdr[k];
            }
            c->opcode = c->hdr[0] & 0x0F;
            if (c->opcode >= 0x8 && len > 125) {
                end_conn(s, c, END_PROTOCOL);
                return;
            }
            /* Control frames and a lone short text frame (an Engine.IO ping is "2") are looked
             * at whole; every other payload is only scanned. */
            c->collect = c->opcode >= 0x8 || (c->opcode == 0x1 && (c->hdr[0] & 0x80) && len <= 8);
            c->ws_left = len;
            c->ctl_len = 0;
            c->hdr_len = 0;
            c->hdr_need = 2;
            c->in_payload = 1;
        }
        size_t take = c->ws_left < n - i ? (size_t)c->ws_left : n - i;
        if (c->collect) {
            memcpy(c->ctl + c->ctl_len, p + i, take);
            c->ctl_len += (uint32_t)take;
        } else {
            scan(s, c, p + i, take);
        }
        i += take;
        c->ws_left -= take;
        if (!c->ws_left) {
            c->in_payload = 0;
            ws_frame_done(s, c);
        }
    }
}

static void feed(sink_t *s, conn_t *c, const uint8_t *p, size_t n) {
    switch (c->st.kind) {
    case KIND_SSE_CHUNKED: chunked(s, c, p, n); break;
    case KIND_WS: ws(s, c, p, n); break;
    default: scan(s, c, p, n); break;
    }
}

static void readable(sink_t *s, conn_t *c) {
    for (int round = 0; round < READS_PER_WAKE && !c->st.ended; round++) {
        struct iovec iov = {s->buf, READ_BUF};
        union { struct cmsghdr align; char space[CMSG_SPACE(sizeof(struct timespec)) * 2]; } control;
        struct msghdr m = {0};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control.space;
        m.msg_controllen = sizeof control.space;
        ssize_t r = recvmsg(c->fd, &m, MSG_DONTWAIT);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) end_conn(s, c, END_READ_ERROR);
            return;
        }
        if (r == 0) {
            end_conn(s, c, END_EOF);
            return;
        }
        int64_t read_ns = ns_of(&now), stamp = -1;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(h), sizeof ts);
                stamp = ns_of(&ts);
            }
        }
        if (stamp <= 0) {  /* no stamp (timestamping off in this netns?): the read time, counted */
            stamp = read_ns;
            s->t.unstamped++;
        }
        c->stamp = stamp;
        c->lag = read_ns - stamp;
        s->t.reads++;
        s->t.bytes += r;
        feed(s, c, s->buf, (size_t)r);
        if ((size_t)r < READ_BUF) return;
    }
}

void *csink_new(int32_t max_conns, int64_t ring, int32_t lazy_ms) {
    sink_t *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->lazy_epfd = epoll_create1(EPOLL_CLOEXEC);
    s->lazy_ns = (int64_t)lazy_ms * 1000000;
    s->conns = calloc((size_t)max_conns, sizeof *s->conns);
    s->lat = malloc((size_t)ring * sizeof *s->lat);
    s->lag = malloc((size_t)ring * sizeof *s->lag);
    s->buf = malloc(READ_BUF);
    s->scan = malloc(SCAN_BUF);
    s->max_conns = max_conns;
    s->cap = ring;
    if (s->epfd < 0 || s->lazy_epfd < 0 || !s->conns || !s->lat || !s->lag || !s->buf || !s->scan) {
        if (s->epfd >= 0) close(s->epfd);
        if (s->lazy_epfd >= 0) close(s->lazy_epfd);
        free(s->conns); free(s->lat); free(s->lag); free(s->buf); free(s->scan); free(s);
        return NULL;
    }
    return s;
}

/* Takes ownership of fd; eager: read at once and sampled for latency, else read every lazy_ns.
 * Returns the connection's index, or -errno. Safe while csink_run runs. */
int32_t csink_add(void *h, int fd, int32_t kind, int64_t last_seq, int32_t eager) {
    sink_t *s = h;
    if (s->nconns >= s->max_conns) return -ENOSPC;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) return -errno;
    int32_t i = s->nconns;
    conn_t *c = &s->conns[i];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->eager = eager;
    c->st.kind = kind;
    c->st.last_seq = last_seq;
    memset(c->st.seen, 0xFF, sizeof c->st.seen);  /* everything up to last_seq was accounted for before */
    c->hdr_need = 2;
    c->ch_state = CH_SIZE;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    if (epoll_ctl(eager ? s->epfd : s->lazy_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return -errno;
    __atomic_store_n(&s->nconns, i + 1, __ATOMIC_RELEASE);
    return i;
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ns_of(&ts);
}

/* Reads every lazy connection with bytes waiting; returns how many, or -errno. Bounded: a
 * connection still readable after its READS_PER_WAKE reads may come up again, in at most
 * nconns / EVENTS + 1 batches. */
static int32_t service_lazy(sink_t *s) {
    struct epoll_event ev[EVENTS];
    int32_t ready = 0;
    s->t.lazy_services++;
    for (int32_t batch = 0; batch <= s->nconns / EVENTS; batch++) {
        int n = epoll_wait(s->lazy_epfd, ev, EVENTS, 0);
        if (n < 0) return errno == EINTR ? ready : -errno;
        for (int k = 0; k < n; k++) {
            conn_t *c = &s->conns[ev[k].data.u32];
            int64_t bytes = s->t.bytes, reads = s->t.reads;
            readable(s, c);
            /* The ACK now, from this core: a few small segments per pass may not be enough for
             * the read to send one, and the delayed-ACK timer would then send it 40 ms on, from
             * the core that received the segments, which on loopback is the server's. */
            int on = 1;
            if (!c->st.ended) setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
            s->t.lazy_reads += s->t.reads - reads;
            if (s->t.bytes - bytes > s->t.lazy_max_bytes) s->t.lazy_max_bytes = s->t.bytes - bytes;
        }
        ready += n;
        if (n < EVENTS) break;
    }
    return ready;
}

/* One turn of the loop: waits up to timeout_ms (less if the lazy set falls due sooner), reads
 * every ready eager socket, then the lazy set if it is due. Returns how many sockets were
 * ready, or -errno. Not while csink_run runs. */
int32_t csink_poll(void *h, int32_t timeout_ms) {
    sink_t *s = h;
    struct epoll_event ev[EVENTS];
    int64_t now = monotonic_ns();
    int64_t until_lazy = s->next_lazy - now;
    if (until_lazy < (int64_t)timeout_ms * 1000000)
        timeout_ms = until_lazy <= 0 ? 0 : (int32_t)((until_lazy + 999999) / 1000000);
    int n = epoll_wait(s->epfd, ev, EVENTS, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    s->t.wakeups++;
    for (int k = 0; k < n; k++) readable(s, &s->conns[ev[k].data.u32]);
    now = monotonic_ns();
    if (now >= s->next_lazy) {
        int32_t lazy = service_lazy(s);
        if (lazy < 0) return lazy;
        n += lazy;
        s->next_lazy = now + s->lazy_ns;
    }
    return n;
}

/* The loop; returns 0 once csink_stop was called (within 50 ms), or -errno. */
int32_t csink_run(void *h) {
    sink_t *s = h;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        int32_t n = csink_poll(s, 50);
        if (n < 0) return n;
    }
    return 0;
}

void csink_stop(void *h) { __atomic_store_n(&((sink_t *)h)->stop, 1, __ATOMIC_RELEASE); }

void csink_totals(void *h, totals_t *out) {
    sink_t *s = h;
    int64_t *dst = (int64_t *)out;
    const int64_t *src = (const int64_t *)&s->t;
    for (size_t k = 0; k < sizeof *out / sizeof(int64_t); k++) dst[k] = __atomic_load_n(&src[k], __ATOMIC_ACQUIRE);
}

/* A snapshot of one connection: exact once the loop is stopped, else field by field. */
int32_t csink_conn(void *h, int32_t i, conn_stats_t *out) {
    sink_t *s = h;
    if (i < 0 || i >= __atomic_load_n(&s->nconns, __ATOMIC_ACQUIRE)) return -EINVAL;
    memcpy(out, &s->conns[i].st, sizeof *out);
    out->ended = __atomic_load_n(&s->conns[i].st.ended, __ATOMIC_ACQUIRE);
    return 0;
}

/* Samples [begin, end) of the ring into lat/lag (either may be NULL), then frees them for
 * the loop. Returns how many were copied: fewer if the range is not (or no longer) there. */
int64_t csink_take(void *h, int64_t begin, int64_t end, int64_t *lat, int64_t *lag) {
    sink_t *s = h;
    int64_t head = __atomic_load_n(&s->t.samples, __ATOMIC_ACQUIRE);
    if (end > head) end = head;
    if (begin < s->consumed || begin >= end) return 0;
    for (int64_t k = begin; k < end; k++) {
        if (lat) lat[k - begin] = s->lat[k % s->cap];
        if (lag) lag[k - begin] = s->lag[k % s->cap];
    }
    __atomic_store_n(&s->consumed, end, __ATOMIC_RELEASE);
    return end - begin;
}

/* Closes every socket it was given. Only once csink_run has returned. */
void csink_free(void *h) {
    sink_t *s = h;
    for (int32_t i = 0; i < s->nconns; i++) close(s->conns[i].fd);
    close(s->epfd);
    close(s->lazy_epfd);
    free(s->conns); free(s->lat); free(s->lag); free(s->buf); free(s->scan); free(s);
}
