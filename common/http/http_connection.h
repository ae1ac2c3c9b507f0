#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/event/event_loop.h"
#include "common/http/http_message.h"
#include "common/http/http_server.h"
#include "common/http/request_parser.h"

struct bufferevent;

namespace sipwake::http {

// One accepted client connection of an HttpServer. It parses one request at a
// time, hands it to the handler and writes the response before looking at
// the next pipelined request, so responses leave in request order.
// Owned by the HttpServer (shared so Responders can hold weak references).
// Runs on the server's loop thread.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  // The server outlives every callback: it frees the bufferevent (ending
  // callbacks) before it goes away, so plain references are enough.
  struct Context {
    EventLoop& loop;
    const ServerLimits& limits;
    const Handler& handler;
    std::function<void(HttpConnection&)> on_closed;
  };

  // Takes ownership of bev (created with BEV_OPT_CLOSE_ON_FREE).
  HttpConnection(Context context, bufferevent* bev, std::string remote_addr, bool tls);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Starts reading requests.
  void start();
  // Sends this response (with Connection: close) and closes; for connections
  // refused before they are served.
  void refuse(Response response);
  // Closes at once without telling the server (server shutdown).
  void abandon();

 private:
  // Reading: parsing a request; Handling: the handler owns it; Writing: a
  // response is being flushed; Lingering: our side is shut down and we wait
  // for the client's EOF; Closed: bufferevent freed.
  enum class State { Reading, Handling, Writing, Lingering, Closed };
  enum class TimerKind { None, Header, Idle, Closing };

  static void onReadCb(bufferevent* bev, void* arg);
  static void onWriteCb(bufferevent* bev, void* arg);
  static void onEventCb(bufferevent* bev, short events, void* arg);

  void onRead() noexcept;
  void onWritten() noexcept;
  void onEvent(short events) noexcept;
  void onTimer() noexcept;

  void resumeReading();
  void processBuffered(std::string_view fresh);
  void dispatch(ParseResult&& parsed);
  void respond(std::uint64_t request_id, Response response);
  void writeResponse(Response response, bool close);
  void startLingering();
  void close();
  void startTimer(TimerKind kind);
  void stopTimer();
  std::string takeInput();

  Context context_;
  bufferevent* bev_;
  std::string remote_addr_;
  bool tls_;
  RequestParser parser_;
  LoopTimer timer_;
  State state_ = State::Reading;
  TimerKind timer_kind_ = TimerKind::None;
  std::uint64_t request_id_ = 0;
  bool keep_alive_ = false;
  bool http10_ = false;
  bool head_ = false;
  bool close_after_write_ = false;
  bool peer_eof_ = false;
};

}  // namespace sipwake::http
