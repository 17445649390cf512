/*
 * rpc_floor: the C floor for `aos-bench rpc` (docs/performance.md, issue 17).
 *
 * The same request/reply as the Swift RPC path, with nothing but librabbitmq: no JSON, no
 * threads, no publisher confirms. What the Swift figures are divided by.
 *
 *   rpc_floor server URL QUEUE
 *       declares QUEUE (auto-delete), consumes it with auto-ack and answers each message with
 *       its own body, published to the default exchange with the message's reply_to as
 *       routing key and its correlation_id. Prints "READY" once it consumes.
 *   rpc_floor client URL QUEUE CALLS WARMUP THROUGHPUT_CALLS IN_FLIGHT BODY_BYTES [SERVER_PID [BROKER_PID]]
 *       one connection, a server-named exclusive reply queue consumed with auto-ack; WARMUP
 *       untimed calls, CALLS timed sequential calls, then THROUGHPUT_CALLS with IN_FLIGHT
 *       outstanding correlation ids. Prints one line:
 *       "FLOOR median_ms=M p99_ms=P throughput=T calls=N in_flight=K body=B cpu_client_seq_us=…"
 *       with the CPU time (user + system, all threads) per call of each phase: its own
 *       (CLOCK_PROCESS_CPUTIME_ID) and, given their pids, the server's and the broker's
 *       (the sum of /proc/PID/task/TID/schedstat over threads; -1 when not given).
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

static void die(const char *what) {
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

/* CPU time of every live thread of `pid` in µs (first field of schedstat, in ns); -1 without a pid.
 * A thread that ends between two readings loses its share: fine for the short phases timed here. */
static double cpu_of_us(long pid) {
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
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1) total += (double)ns / 1e3;
        fclose(f);
    }
    closedir(d);
    return total;
}

/* Per call, or -1 when either reading is missing. */
static double per_call(double before, double after, long calls) {
    if (before < 0 || after < 0 || calls <= 0) return -1;
    return (after - before) / (double)calls;
}

static int run_server(const char *url, const char *queue) {
    amqp_connection_state_t conn = open_connection(url);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 0, 0, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare failed");
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume failed");
    printf("READY\n");
    fflush(stdout);
    for (;;) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, NULL, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) break; /* connection closed */
        amqp_basic_properties_t *in = &env.message.properties;
        if ((in->_flags & AMQP_BASIC_REPLY_TO_FLAG) && in->reply_to.len > 0) {
            amqp_basic_properties_t out;
            memset(&out, 0, sizeof out);
            if (in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
                out._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
                out.correlation_id = in->correlation_id;
            }
            amqp_basic_publish(conn, 1, amqp_empty_bytes, in->reply_to, 0, 0, &out, env.message.body);
        }
        amqp_destroy_envelope(&env);
    }
    amqp_destroy_connection(conn);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sends request `id` to `queue` with replies to `reply_to`. */
static void send_request(amqp_connection_state_t conn, const char *queue, amqp_bytes_t reply_to, uint64_t id,
                         amqp_bytes_t body) {
    char cid[24];
    snprintf(cid, sizeof cid, "%llu", (unsigned long long)id);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.reply_to = reply_to;
    p.correlation_id = amqp_cstring_bytes(cid);
    p.content_type = amqp_cstring_bytes("application/json");
    if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &p, body) != AMQP_STATUS_OK)
        die("publish failed");
}

/* Waits for one reply; returns its correlation id. */
static uint64_t receive_reply(amqp_connection_state_t conn) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    check_reply(amqp_consume_message(conn, &env, NULL, 0), "consume failed");
    uint64_t id = 0;
    amqp_basic_properties_t *p = &env.message.properties;
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        const char *s = p->correlation_id.bytes;
        for (size_t i = 0; i < p->correlation_id.len && s[i] >= '0' && s[i] <= '9'; i++) id = id * 10 + (uint64_t)(s[i] - '0');
    }
    amqp_destroy_envelope(&env);
    return id;
}

static int run_client(const char *url, const char *queue, long calls, long warmup, long tcalls, long inflight,
                      long body_bytes, long server_pid, long broker_pid) {
    amqp_connection_state_t conn = open_connection(url);
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "reply queue.declare failed");
    amqp_bytes_t reply_to = amqp_bytes_malloc_dup(ok->queue);
    amqp_basic_consume(conn, 1, reply_to, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "reply basic.consume failed");

    char *payload = malloc((size_t)body_bytes);
    if (payload == NULL) die("out of memory");
    memset(payload, 'x', (size_t)body_bytes);
    amqp_bytes_t body = {(size_t)body_bytes, payload};

    uint64_t next = 1;
    for (long i = 0; i < warmup; i++) {
        uint64_t id = next++;
        send_request(conn, queue, reply_to, id, body);
        while (receive_reply(conn) != id) {}
    }
    double *samples = malloc(sizeof(double) * (size_t)calls);
    if (samples == NULL) die("out of memory");
    double c0 = cpu_self_us(), s0 = cpu_of_us(server_pid), b0 = cpu_of_us(broker_pid);
    for (long i = 0; i < calls; i++) {
        uint64_t id = next++;
        double t = now_ms();
        send_request(conn, queue, reply_to, id, body);
        while (receive_reply(conn) != id) {}
        samples[i] = now_ms() - t;
    }
    double c1 = cpu_self_us(), s1 = cpu_of_us(server_pid), b1 = cpu_of_us(broker_pid);
    qsort(samples, (size_t)calls, sizeof(double), cmp_double);
    double median = samples[calls / 2];
    long p99i = (long)((double)calls * 0.99);
    if (p99i >= calls) p99i = calls - 1;
    double p99 = samples[p99i];

    /* Throughput: keep `inflight` correlation ids outstanding on the one connection. */
    long sent = 0, done = 0;
    double t0 = now_ms();
    double c1t = cpu_self_us(), s1t = cpu_of_us(server_pid), b1t = cpu_of_us(broker_pid);
    for (; sent < inflight && sent < tcalls; sent++) send_request(conn, queue, reply_to, next++, body);
    while (done < tcalls) {
        (void)receive_reply(conn);
        done++;
        if (sent < tcalls) {
            send_request(conn, queue, reply_to, next++, body);
            sent++;
        }
    }
    double elapsed = now_ms() - t0;
    double c2 = cpu_self_us(), s2 = cpu_of_us(server_pid), b2 = cpu_of_us(broker_pid);
    printf("FLOOR median_ms=%.4f p99_ms=%.4f throughput=%.0f calls=%ld in_flight=%ld body=%ld"
           " cpu_client_seq_us=%.2f cpu_server_seq_us=%.2f cpu_broker_seq_us=%.2f"
           " cpu_client_tput_us=%.2f cpu_server_tput_us=%.2f cpu_broker_tput_us=%.2f\n",
           median, p99, (double)tcalls / (elapsed / 1000.0), calls, inflight, body_bytes, per_call(c0, c1, calls),
           per_call(s0, s1, calls), per_call(b0, b1, calls), per_call(c1t, c2, tcalls), per_call(s1t, s2, tcalls),
           per_call(b1t, b2, tcalls));
    fflush(stdout);
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
    if (argc == 4 && strcmp(argv[1], "server") == 0) return run_server(argv[2], argv[3]);
    if (argc >= 9 && argc <= 11 && strcmp(argv[1], "client") == 0)
        return run_client(argv[2], argv[3], parse_count(argv[4], 1, 100000000), parse_count(argv[5], 0, 100000000),
                          parse_count(argv[6], 1, 100000000), parse_count(argv[7], 1, 10000),
                          parse_count(argv[8], 1, 1 << 20), argc > 9 ? parse_count(argv[9], 0, 1L << 30) : 0,
                          argc > 10 ? parse_count(argv[10], 0, 1L << 30) : 0);
    fprintf(stderr, "usage: rpc_floor server URL QUEUE\n"
                    "       rpc_floor client URL QUEUE CALLS WARMUP THROUGHPUT_CALLS IN_FLIGHT BODY_BYTES [SERVER_PID "
                    "[BROKER_PID]]\n");
    return 2;
}
