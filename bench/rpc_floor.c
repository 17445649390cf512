/*
 * rpc_floor: the C floor for `aos-bench rpc` (docs/performance.md, issue 17).
 *
 * The same request/reply as the Swift RPC path, with nothing but librabbitmq: no JSON, no
 * threads. What the Swift figures are divided by. Two modes:
 *   bare (the default): auto-ack request consumer, no publisher confirms, non-mandatory publishes;
 *   --reliable: what the Swift path does for reliability (OsloRPC's RPCClient and RPCServer):
 *       both sides put their channel in confirm mode (confirm.select) and publish `mandatory`
 *       (an unroutable message comes back as basic.return); the client's call ends once it has
 *       both the reply and the broker's confirm of its request (the Swift client resumes the call
 *       on the reply and handles the confirm as it comes); the server consumes with manual
 *       ack and a prefetch of 80 (RPCServer's default for 64 requests at once), and for each
 *       request, as RPCServer does, acks it
 *       (before execution: at-most-once, like oslo), then publishes the reply, whose confirm
 *       it handles when it comes without waiting for it.
 *
 *   --oslo-routing (with or without --reliable; on both commands): what else the Swift path asks
 *       of the broker: requests go through a topic exchange (aos-floor-topic, bound to QUEUE
 *       with QUEUE as routing key) instead of the default exchange, with oslo's properties
 *       (content_encoding, delivery_mode 2, priority 0, empty headers) and a per-message TTL
 *       (expiration 10000 ms) as RPCClient sends them; replies carry the same properties but no TTL.
 *
 *   rpc_floor server URL QUEUE [--reliable] [--oslo-routing]
 *       declares QUEUE (auto-delete), consumes it and answers each message with its own body,
 *       published to the default exchange with the message's reply_to as routing key and its
 *       correlation_id. Prints "READY" once it consumes.
 *   rpc_floor relay URL QUEUE NEXT_QUEUE
 *       bare mode only: the floor of a path with a middle hop (caller -> controller -> agent in
 *       `aos-bench path`). Declares QUEUE (auto-delete) and a server-named reply queue, consumes
 *       both with auto-ack; each request on QUEUE is sent on to NEXT_QUEUE (default exchange,
 *       the relay's reply queue, its own correlation id), and each reply that comes back is
 *       answered to the original caller with the caller's correlation id. Up to 4096 calls in
 *       flight. Prints "READY" once it consumes.
 *   rpc_floor client URL QUEUE CALLS WARMUP THROUGHPUT_CALLS IN_FLIGHT BODY_BYTES [SERVER_PID [BROKER_PID]] [--reliable] [--oslo-routing]
 *       one connection, a server-named exclusive reply queue consumed with auto-ack; WARMUP
 *       untimed calls, CALLS timed sequential calls, then THROUGHPUT_CALLS with IN_FLIGHT
 *       outstanding calls. A nacked or returned request ends the program (status 1). Prints one line:
 *       "FLOOR mode=bare|reliable[+oslo-routing] median_ms=M p99_ms=P throughput=T calls=N in_flight=K body=B cpu_client_seq_us=…"
 *       with the CPU time (user + system, all threads) per call of each phase: its own
 *       (CLOCK_PROCESS_CPUTIME_ID) and, given their pids, the server's and the broker's
 *       (the sum of /proc/PID/task/TID/schedstat over threads; -1 when not given); then
 *       "wake_client_seq=…" and the rest: how many times each process's threads were put on a
 *       CPU per call (schedstat's third field), the same way.
 *
 * Build: cc -O2 -o rpc_floor bench/rpc_floor.c $(pkg-config --cflags --libs librabbitmq)
 * (aos-bench does this itself when the binary is missing or older than this file).
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Noreturn void die(const char *what) {
    fprintf(stderr, "rpc_floor: %s\n", what);
    exit(1);
}

static void check_reply(amqp_rpc_reply_t r, const char *what) {
    if (r.reply_type != AMQP_RESPONSE_NORMAL) die(what);
}

static long parse_count(const char *s, long min, long max) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > max) die("bad number argument");
    return v;
}

static amqp_connection_state_t open_connection(const char *url_arg) {
    struct amqp_connection_info info;
    char *url = strdup(url_arg);
    if (url == NULL) die("out of memory");
    amqp_default_connection_info(&info);
    /* oslo-style rabbit:// URLs mean amqp:// here. */
    if (strncmp(url, "rabbit://", 9) == 0) {
        char *fixed = malloc(strlen(url) + 1);
        if (fixed == NULL) die("out of memory");
        strcpy(fixed, "amqp://");
        strcat(fixed, url + 9);
        free(url);
        url = fixed;
    }
    if (amqp_parse_url(url, &info) != AMQP_STATUS_OK) die("cannot parse the URL");
    /* "amqp://host:port/" names the default vhost "/", as oslo.messaging and TransportURL read it. */
    if (info.vhost == NULL || info.vhost[0] == '\0') info.vhost = "/";
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (socket == NULL) die("cannot create a socket");
    if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK) die("cannot connect to the broker");
    check_reply(amqp_login(conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password),
                "login failed");
    amqp_channel_open(conn, 1);
    check_reply(amqp_get_rpc_reply(conn), "channel.open failed");
    free(url);
    return conn;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_self_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Field `field` (0: CPU time in ns; 2: times put on a CPU) of schedstat, summed over every live
 * thread of `pid`; -1 without a pid. A thread that ends between two readings loses its share:
 * fine for the short phases timed here. */
static double sched_sum(long pid, int field) {
    if (pid <= 0) return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    double total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char stat[128];
        snprintf(stat, sizeof stat, "/proc/%ld/task/%.20s/schedstat", pid, e->d_name);
        FILE *f = fopen(stat, "r");
        if (f == NULL) continue;
        unsigned long long v[3] = {0, 0, 0};
        if (fscanf(f, "%llu %llu %llu", &v[0], &v[1], &v[2]) == 3) total += (double)v[field];
        fclose(f);
    }
    closedir(d);
    return total;
}

/* CPU time of every live thread of `pid` in µs; -1 without a pid. */
static double cpu_of_us(long pid) {
    double ns = sched_sum(pid, 0);
    return ns < 0 ? -1 : ns / 1e3;
}

/* How many times the threads of `pid` were put on a CPU (schedstat's third field): a thread
 * hand-off costs one, so per call it counts the wake-ups a design needs, which wall time on a
 * shared machine does not show repeatably; -1 without a pid. */
static double wakeups_of(long pid) { return sched_sum(pid, 2); }

/* Per call, or -1 when either reading is missing. */
static double per_call(double before, double after, long calls) {
    if (before < 0 || after < 0 || calls <= 0) return -1;
    return (after - before) / (double)calls;
}

/* --oslo-routing: the topic exchange and the oslo properties. */
static int oslo_routing = 0;
static const char *const topic_exchange = "aos-floor-topic";

static void set_oslo_properties(amqp_basic_properties_t *p) {
    p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    p->content_type = amqp_cstring_bytes("application/json");
    p->content_encoding = amqp_cstring_bytes("utf-8");
    p->headers = amqp_empty_table;
    p->delivery_mode = 2;
    p->priority = 0;
}

/* Tells the parent (aos-bench's startChild waits for this line) that the queues are consumed. */
static void say_ready(void) {
    printf("READY\n");
    fflush(stdout);
}

/* The next delivery, the library's buffers of the previous one released first. */
static amqp_rpc_reply_t next_message(amqp_connection_state_t conn, amqp_envelope_t *env) {
    amqp_maybe_release_buffers(conn);
    return amqp_consume_message(conn, env, NULL, 0);
}

/* Puts the channel in confirm mode (--reliable). */
static void select_confirms(amqp_connection_state_t conn) {
    amqp_confirm_select(conn, 1);
    check_reply(amqp_get_rpc_reply(conn), "confirm.select failed");
}

/* What a frame other than a delivery was, once amqp_consume_message has refused it. */
enum event { EV_CONFIRM, EV_NACK, EV_RETURN, EV_OTHER };

/* Reads the frame amqp_consume_message left (AMQP_STATUS_UNEXPECTED_STATE): a publisher
 * confirm (its tag and multiple flag in *tag, *multiple), a nack, a basic.return (its message
 * is read and dropped) or anything else. A channel or connection close ends the program. */
static enum event read_other_frame(amqp_connection_state_t conn, uint64_t *tag, int *multiple) {
    amqp_frame_t f;
    if (amqp_simple_wait_frame(conn, &f) != AMQP_STATUS_OK) die("connection lost");
    if (f.frame_type != AMQP_FRAME_METHOD) return EV_OTHER;
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = (amqp_basic_ack_t *)f.payload.method.decoded;
        *tag = a->delivery_tag;
        *multiple = a->multiple != 0;
        return EV_CONFIRM;
    }
    case AMQP_BASIC_NACK_METHOD: return EV_NACK;
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t m;
        amqp_rpc_reply_t r = amqp_read_message(conn, f.channel, &m, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) die("cannot read a returned message");
        amqp_destroy_message(&m);
        return EV_RETURN;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: die("the broker closed the channel");
    case AMQP_CONNECTION_CLOSE_METHOD: die("the broker closed the connection");
    default: return EV_OTHER;
    }
}

static int run_server(const char *url, const char *queue, int reliable) {
    amqp_connection_state_t conn = open_connection(url);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 0, 0, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare failed");
    if (oslo_routing) {
        amqp_exchange_declare(conn, 1, amqp_cstring_bytes(topic_exchange), amqp_cstring_bytes("topic"), 0, 0, 0, 0,
                              amqp_empty_table);
        check_reply(amqp_get_rpc_reply(conn), "exchange.declare failed");
        amqp_queue_bind(conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(topic_exchange),
                        amqp_cstring_bytes(queue), amqp_empty_table);
        check_reply(amqp_get_rpc_reply(conn), "queue.bind failed");
    }
    if (reliable) {
        select_confirms(conn);
        amqp_basic_qos(conn, 1, 0, 80, 0);
        check_reply(amqp_get_rpc_reply(conn), "basic.qos failed");
    }
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, reliable ? 0 : 1, 0,
                       amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume failed");
    say_ready();
    for (;;) {
        amqp_envelope_t env;
        amqp_rpc_reply_t r = next_message(conn, &env);
        if (reliable && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* A reply's confirm, nack or return: RPCServer only logs those. */
            uint64_t tag;
            int multiple;
            (void)read_other_frame(conn, &tag, &multiple);
            continue;
        }
        if (r.reply_type != AMQP_RESPONSE_NORMAL) break; /* connection closed */
        /* RPCServer acks a request once a work slot is free, before running it. */
        if (reliable && amqp_basic_ack(conn, 1, env.delivery_tag, 0) != AMQP_STATUS_OK) die("basic.ack failed");
        amqp_basic_properties_t *in = &env.message.properties;
        if ((in->_flags & AMQP_BASIC_REPLY_TO_FLAG) && in->reply_to.len > 0) {
            amqp_basic_properties_t out;
            memset(&out, 0, sizeof out);
            if (in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
                out._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
                out.correlation_id = in->correlation_id;
            }
            if (oslo_routing) set_oslo_properties(&out);
            amqp_basic_publish(conn, 1, amqp_empty_bytes, in->reply_to, reliable ? 1 : 0, 0, &out, env.message.body);
        }
        amqp_destroy_envelope(&env);
    }
    amqp_destroy_connection(conn);
    return 0;
}

/* The correlation id the client and the relay send: decimal digits (0 when absent or not one). */
static uint64_t numeric_correlation_id(const amqp_basic_properties_t *p) {
    uint64_t id = 0;
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        const char *s = p->correlation_id.bytes;
        for (size_t i = 0; i < p->correlation_id.len && i < 19 && s[i] >= '0' && s[i] <= '9'; i++)
            id = id * 10 + (uint64_t)(s[i] - '0');
    }
    return id;
}

static void send_request(amqp_connection_state_t conn, const char *queue, amqp_bytes_t reply_to, uint64_t id,
                         amqp_bytes_t body, int mandatory);

/* A call passing through the relay: where its answer goes. */
#define RELAY_SLOTS 4096
struct relay_slot {
    uint64_t id; /* the relay's correlation id for it; 0: free */
    amqp_bytes_t reply_to;
    amqp_bytes_t correlation_id;
    int has_correlation_id;
};

static int run_relay(const char *url, const char *queue, const char *next_queue) {
    amqp_connection_state_t conn = open_connection(url);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 0, 0, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare failed");
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "reply queue.declare failed");
    amqp_bytes_t own_reply = amqp_bytes_malloc_dup(ok->queue);
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes("requests"), 0, 1, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume failed");
    amqp_basic_consume(conn, 1, own_reply, amqp_cstring_bytes("replies"), 0, 1, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "reply basic.consume failed");
    static struct relay_slot slots[RELAY_SLOTS];
    uint64_t next_id = 1;
    say_ready();
    for (;;) {
        amqp_envelope_t env;
        amqp_rpc_reply_t r = next_message(conn, &env);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) break; /* connection closed */
        amqp_basic_properties_t *in = &env.message.properties;
        if (env.consumer_tag.len == 8 && memcmp(env.consumer_tag.bytes, "requests", 8) == 0) {
            if ((in->_flags & AMQP_BASIC_REPLY_TO_FLAG) && in->reply_to.len > 0) {
                uint64_t id = next_id++;
                struct relay_slot *slot = &slots[id % RELAY_SLOTS];
                if (slot->id != 0) die("more than 4096 calls in flight through the relay");
                slot->id = id;
                slot->reply_to = amqp_bytes_malloc_dup(in->reply_to);
                slot->has_correlation_id = (in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) && in->correlation_id.len > 0;
                slot->correlation_id = slot->has_correlation_id ? amqp_bytes_malloc_dup(in->correlation_id) : amqp_empty_bytes;
                send_request(conn, next_queue, own_reply, id, env.message.body, 0);
            }
        } else {
            uint64_t id = numeric_correlation_id(in);
            struct relay_slot *slot = &slots[id % RELAY_SLOTS];
            if (id != 0 && slot->id == id) {
                amqp_basic_properties_t out;
                memset(&out, 0, sizeof out);
                if (slot->has_correlation_id) {
                    out._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
                    out.correlation_id = slot->correlation_id;
                }
                amqp_basic_publish(conn, 1, amqp_empty_bytes, slot->reply_to, 0, 0, &out, env.message.body);
                amqp_bytes_free(slot->reply_to);
                if (slot->has_correlation_id) amqp_bytes_free(slot->correlation_id);
                slot->id = 0;
            }
        }
        amqp_destroy_envelope(&env);
    }
    amqp_bytes_free(own_reply);
    amqp_destroy_connection(conn);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sends request `id` to `queue` with replies to `reply_to`. */
static void send_request(amqp_connection_state_t conn, const char *queue, amqp_bytes_t reply_to, uint64_t id,
                         amqp_bytes_t body, int mandatory) {
    char cid[24];
    snprintf(cid, sizeof cid, "%llu", (unsigned long long)id);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.reply_to = reply_to;
    p.correlation_id = amqp_cstring_bytes(cid);
    p.content_type = amqp_cstring_bytes("application/json");
    amqp_bytes_t exchange = amqp_empty_bytes;
    if (oslo_routing) {
        set_oslo_properties(&p);
        p._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        p.expiration = amqp_cstring_bytes("10000");
        exchange = amqp_cstring_bytes(topic_exchange);
    }
    if (amqp_basic_publish(conn, 1, exchange, amqp_cstring_bytes(queue), mandatory, 0, &p, body) != AMQP_STATUS_OK)
        die("publish failed");
}

/* The client's calls, by id (ids 1...last; in reliable mode a request's id is also its
 * publish sequence number, the delivery tag of its confirm: the client publishes nothing else). */
struct calls {
    amqp_connection_state_t conn;
    int reliable;
    uint64_t last;            /* the highest id that will be used */
    unsigned char *state;     /* per id: GOT_REPLY | GOT_CONFIRM */
    uint64_t confirmed_below; /* every tag below this one is confirmed */
    long completed;           /* calls with all they wait for */
};
enum { GOT_REPLY = 1, GOT_CONFIRM = 2 };

static int complete(const struct calls *c, uint64_t id) {
    unsigned char want = c->reliable ? GOT_REPLY | GOT_CONFIRM : GOT_REPLY;
    return (c->state[id] & want) == want;
}

static void mark(struct calls *c, uint64_t id, unsigned char what) {
    if (id == 0 || id > c->last || (c->state[id] & what)) return; /* unknown or repeated: ignored */
    int before = complete(c, id);
    c->state[id] |= what;
    if (!before && complete(c, id)) c->completed++;
}

/* Waits for the next reply or confirm and records it. */
static void pump(struct calls *c) {
    amqp_envelope_t env;
    amqp_rpc_reply_t r = next_message(c->conn, &env);
    if (c->reliable && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        uint64_t tag = 0;
        int multiple = 0;
        switch (read_other_frame(c->conn, &tag, &multiple)) {
        case EV_CONFIRM:
            if (tag > c->last) tag = c->last;
            if (multiple) {
                for (uint64_t t = c->confirmed_below; t <= tag; t++) mark(c, t, GOT_CONFIRM);
            } else {
                mark(c, tag, GOT_CONFIRM);
            }
            while (c->confirmed_below <= c->last && (c->state[c->confirmed_below] & GOT_CONFIRM)) c->confirmed_below++;
            return;
        case EV_NACK: die("the broker nacked a request");
        case EV_RETURN: die("a request came back unroutable (basic.return)");
        case EV_OTHER: return;
        }
    }
    check_reply(r, "consume failed");
    uint64_t id = numeric_correlation_id(&env.message.properties);
    amqp_destroy_envelope(&env);
    mark(c, id, GOT_REPLY);
}

static int run_client(const char *url, const char *queue, long calls, long warmup, long tcalls, long inflight,
                      long body_bytes, long server_pid, long broker_pid, int reliable) {
    amqp_connection_state_t conn = open_connection(url);
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "reply queue.declare failed");
    amqp_bytes_t reply_to = amqp_bytes_malloc_dup(ok->queue);
    amqp_basic_consume(conn, 1, reply_to, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "reply basic.consume failed");
    if (reliable) select_confirms(conn);

    char *payload = malloc((size_t)body_bytes);
    if (payload == NULL) die("out of memory");
    memset(payload, 'x', (size_t)body_bytes);
    amqp_bytes_t body = {(size_t)body_bytes, payload};

    struct calls c = {conn, reliable, (uint64_t)(warmup + calls + tcalls), NULL, 1, 0};
    c.state = calloc((size_t)c.last + 1, 1);
    if (c.state == NULL) die("out of memory");

    uint64_t next = 1;
    for (long i = 0; i < warmup; i++) {
        uint64_t id = next++;
        send_request(conn, queue, reply_to, id, body, reliable);
        while (!complete(&c, id)) pump(&c);
    }
    double *samples = malloc(sizeof(double) * (size_t)calls);
    if (samples == NULL) die("out of memory");
    long self_pid = (long)getpid();
    double c0 = cpu_self_us(), s0 = cpu_of_us(server_pid), b0 = cpu_of_us(broker_pid);
    double wc0 = wakeups_of(self_pid), ws0 = wakeups_of(server_pid), wb0 = wakeups_of(broker_pid);
    for (long i = 0; i < calls; i++) {
        uint64_t id = next++;
        double t = now_ms();
        send_request(conn, queue, reply_to, id, body, reliable);
        while (!complete(&c, id)) pump(&c);
        samples[i] = now_ms() - t;
    }
    double c1 = cpu_self_us(), s1 = cpu_of_us(server_pid), b1 = cpu_of_us(broker_pid);
    double wc1 = wakeups_of(self_pid), ws1 = wakeups_of(server_pid), wb1 = wakeups_of(broker_pid);
    qsort(samples, (size_t)calls, sizeof(double), cmp_double);
    double median = samples[calls / 2];
    long p99i = (long)((double)calls * 0.99);
    if (p99i >= calls) p99i = calls - 1;
    double p99 = samples[p99i];

    /* Throughput: keep `inflight` calls outstanding on the one connection. */
    long sent = 0, done0 = c.completed;
    double t0 = now_ms();
    double c1t = cpu_self_us(), s1t = cpu_of_us(server_pid), b1t = cpu_of_us(broker_pid);
    double wc1t = wakeups_of(self_pid), ws1t = wakeups_of(server_pid), wb1t = wakeups_of(broker_pid);
    for (; sent < inflight && sent < tcalls; sent++) send_request(conn, queue, reply_to, next++, body, reliable);
    while (c.completed - done0 < tcalls) {
        long before = c.completed;
        pump(&c);
        for (long k = before; k < c.completed && sent < tcalls; k++, sent++)
            send_request(conn, queue, reply_to, next++, body, reliable);
    }
    double elapsed = now_ms() - t0;
    double c2 = cpu_self_us(), s2 = cpu_of_us(server_pid), b2 = cpu_of_us(broker_pid);
    double wc2 = wakeups_of(self_pid), ws2 = wakeups_of(server_pid), wb2 = wakeups_of(broker_pid);
    printf("FLOOR mode=%s%s median_ms=%.4f p99_ms=%.4f throughput=%.0f calls=%ld in_flight=%ld body=%ld"
           " cpu_client_seq_us=%.2f cpu_server_seq_us=%.2f cpu_broker_seq_us=%.2f"
           " cpu_client_tput_us=%.2f cpu_server_tput_us=%.2f cpu_broker_tput_us=%.2f"
           " wake_client_seq=%.2f wake_server_seq=%.2f wake_broker_seq=%.2f"
           " wake_client_tput=%.2f wake_server_tput=%.2f wake_broker_tput=%.2f\n",
           reliable ? "reliable" : "bare", oslo_routing ? "+oslo-routing" : "", median, p99, (double)tcalls / (elapsed / 1000.0), calls, inflight,
           body_bytes, per_call(c0, c1, calls), per_call(s0, s1, calls), per_call(b0, b1, calls),
           per_call(c1t, c2, tcalls), per_call(s1t, s2, tcalls), per_call(b1t, b2, tcalls),
           per_call(wc0, wc1, calls), per_call(ws0, ws1, calls), per_call(wb0, wb1, calls),
           per_call(wc1t, wc2, tcalls), per_call(ws1t, ws2, tcalls), per_call(wb1t, wb2, tcalls));
    fflush(stdout);
    free(c.state);
    free(samples);
    free(payload);
    amqp_bytes_free(reply_to);
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return 0;
}

int main(int argc, char **argv) {
    /* A parent may start us with signals blocked (Foundation's Process does): the server must
     * still end on the SIGTERM it gets when the benchmark is over. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    /* --reliable and --oslo-routing, wherever they are, then the positional arguments. */
    int reliable = 0;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--reliable") == 0)
            reliable = 1;
        else if (i > 0 && strcmp(argv[i], "--oslo-routing") == 0)
            oslo_routing = 1;
        else
            argv[n++] = argv[i];
    }
    argc = n;
    if (argc == 4 && strcmp(argv[1], "server") == 0) return run_server(argv[2], argv[3], reliable);
    if (argc == 5 && strcmp(argv[1], "relay") == 0) {
        if (reliable || oslo_routing) die("relay: bare mode only (no --reliable, no --oslo-routing)");
        return run_relay(argv[2], argv[3], argv[4]);
    }
    if (argc >= 9 && argc <= 11 && strcmp(argv[1], "client") == 0)
        return run_client(argv[2], argv[3], parse_count(argv[4], 1, 100000000), parse_count(argv[5], 0, 100000000),
                          parse_count(argv[6], 1, 100000000), parse_count(argv[7], 1, 10000),
                          parse_count(argv[8], 1, 1 << 20), argc > 9 ? parse_count(argv[9], 0, 1L << 30) : 0,
                          argc > 10 ? parse_count(argv[10], 0, 1L << 30) : 0, reliable);
    fprintf(stderr, "usage: rpc_floor server URL QUEUE [--reliable] [--oslo-routing]\n"
                    "       rpc_floor relay URL QUEUE NEXT_QUEUE\n"
                    "       rpc_floor client URL QUEUE CALLS WARMUP THROUGHPUT_CALLS IN_FLIGHT BODY_BYTES [SERVER_PID "
                    "[BROKER_PID]] [--reliable] [--oslo-routing]\n");
    return 2;
}
