#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/event/clock.h"

namespace sipwake::http2 {

// Where and how an http2::Client connects. Read once, at construction.
struct ClientOptions {
  // "127.0.0.1" or a name. A name is resolved with getaddrinfo on a helper
  // thread at each connection attempt (see HostResolver), never on the loop.
  std::string host;
  std::uint16_t port = 443;
  // :authority; empty: host, with ":port" unless the port is 443.
  std::string authority;
  // PEM CA certificates; empty: the system store. Verification is always on
  // (the certificate must name `host`); there is no switch to disable it.
  std::string ca_file;
  // Requests waiting for a stream; beyond it submit() fails with "queue full".
  std::size_t max_queued = 100000;
  // TCP connect + TLS handshake + the server's first SETTINGS.
  Millis connect_timeout = 5000;
  // Per request, from submission; on expiry the stream is reset and the
  // callback gets error "timeout".
  Millis request_timeout = 10000;
  // A PING is sent after this long without anything received; no PING ACK
  // within connect_timeout closes the connection.
  Millis ping_interval = 60000;
};

}  // namespace sipwake::http2
