// Swift cannot call C variadic functions or some glibc helpers that the Glibc
// module does not export; these static inline wrappers bridge the gap.
#ifndef AOS_CRABBITMQ_SHIM_H
#define AOS_CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <errno.h>

/// amqp_login_with_properties is variadic; PLAIN takes (user, password).
static inline amqp_rpc_reply_t aos_amqp_login_plain(amqp_connection_state_t state,
                                                   const char *vhost,
                                                   int channel_max,
                                                   int frame_max,
                                                   int heartbeat,
                                                   const amqp_table_t *client_properties,
                                                   const char *user,
                                                   const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat,
                                      client_properties, AMQP_SASL_METHOD_PLAIN, user, password);
}

static inline int aos_eventfd(unsigned int initval, int flags) {
    return eventfd(initval, flags);
}

static inline int aos_errno(void) { return errno; }

// Method ids are defined as cast macros, which Swift does not import.
static const uint32_t AOS_BASIC_ACK = AMQP_BASIC_ACK_METHOD;
static const uint32_t AOS_BASIC_NACK = AMQP_BASIC_NACK_METHOD;
static const uint32_t AOS_BASIC_RETURN = AMQP_BASIC_RETURN_METHOD;
static const uint32_t AOS_BASIC_CANCEL = AMQP_BASIC_CANCEL_METHOD;
static const uint32_t AOS_BASIC_DELIVER = AMQP_BASIC_DELIVER_METHOD;
static const uint32_t AOS_CHANNEL_CLOSE = AMQP_CHANNEL_CLOSE_METHOD;
static const uint32_t AOS_CHANNEL_CLOSE_OK = AMQP_CHANNEL_CLOSE_OK_METHOD;
static const uint32_t AOS_CONNECTION_CLOSE = AMQP_CONNECTION_CLOSE_METHOD;
static const uint32_t AOS_CONNECTION_CLOSE_OK = AMQP_CONNECTION_CLOSE_OK_METHOD;
static const uint32_t AOS_CONNECTION_BLOCKED = AMQP_CONNECTION_BLOCKED_METHOD;
static const uint32_t AOS_CONNECTION_UNBLOCKED = AMQP_CONNECTION_UNBLOCKED_METHOD;

static inline const char *aos_bytes_ptr(amqp_bytes_t b) { return (const char *)b.bytes; }

#endif
