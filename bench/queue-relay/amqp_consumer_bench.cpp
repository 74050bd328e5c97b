// envkit-bench-amqp-consumer: the fastest way rabbitmq-c can drain a queue, as the limit
// queue-relay's RabbitMQ source is measured against: a large prefetch, one bulk ack
// (multiple=true) every half prefetch, and every message discarded.
//
// Usage: envkit-bench-amqp-consumer HOST PORT USER VHOST QUEUE COUNT [PREFETCH]
//   The password comes from ENVKIT_AMQP_PASSWORD. Prints "COUNT messages in S s: R/s" and
//   exits 0 once COUNT messages were taken and acked; 1 on any error (with the reason).
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

bool ok(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
  std::fprintf(stderr, "envkit-bench-amqp-consumer: error: %s failed (reply type %d)\n", what,
               static_cast<int>(r.reply_type));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: envkit-bench-amqp-consumer HOST PORT USER VHOST QUEUE COUNT [PREFETCH]\n");
    return 64;
  }
  const char* host = argv[1];
  int port = std::atoi(argv[2]);
  const char* user = argv[3];
  const char* vhost = argv[4];
  const char* queue = argv[5];
  long count = std::atol(argv[6]);
  int prefetch = argc > 7 ? std::atoi(argv[7]) : 10000;
  const char* password = std::getenv("ENVKIT_AMQP_PASSWORD");

  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (socket == nullptr || amqp_socket_open(socket, host, port) != AMQP_STATUS_OK) {
    std::fprintf(stderr, "envkit-bench-amqp-consumer: error: cannot connect to %s:%d\n", host, port);
    return 1;
  }
  if (!ok(amqp_login(conn, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, user, password ? password : ""),
          "login")) {
    return 1;
  }
  amqp_channel_open(conn, 1);
  if (!ok(amqp_get_rpc_reply(conn), "channel.open")) return 1;
  amqp_basic_qos(conn, 1, 0, static_cast<uint16_t>(prefetch > 65535 ? 65535 : prefetch), 0);
  if (!ok(amqp_get_rpc_reply(conn), "basic.qos")) return 1;
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, /*no_ack=*/0, 0,
                     amqp_empty_table);
  if (!ok(amqp_get_rpc_reply(conn), "basic.consume")) return 1;

  const long ack_every = prefetch / 2 > 0 ? prefetch / 2 : 1;
  long taken = 0, unacked = 0;
  uint64_t last_tag = 0;
  auto start = std::chrono::steady_clock::now();
  // Bounded: a queue that runs dry leaves after 10 s without a message.
  timeval idle{10, 0};
  while (taken < count) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t r = amqp_consume_message(conn, &envelope, &idle, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      std::fprintf(stderr, "envkit-bench-amqp-consumer: error: %ld of %ld messages, then nothing (reply type %d, %s)\n",
                   taken, count, static_cast<int>(r.reply_type),
                   r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error) : "");
      return 1;
    }
    last_tag = envelope.delivery_tag;
    amqp_destroy_envelope(&envelope);
    ++taken;
    if (++unacked >= ack_every || taken == count) {
      amqp_basic_ack(conn, 1, last_tag, /*multiple=*/1);
      unacked = 0;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%ld messages in %.3f s: %.0f/s\n", taken, seconds, taken / seconds);
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  return 0;
}
