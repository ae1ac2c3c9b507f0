#include "common/http2/http2_client.h"

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <stdexcept>

#include "common/http2/tls_client_context.h"
#include "common/log/logger.h"

namespace sipwake::http2 {
namespace {

constexpr Millis kMinBackoff = 100;
constexpr Millis kMaxBackoff = 5000;
// Recycled exchanges kept for reuse; beyond, they are freed.
constexpr std::size_t kPoolLimit = 4096;
// Passes of the work loop per event before yielding to other events.
constexpr int kMaxWorkRounds = 16;

std::string defaultAuthority(const ClientOptions& o) {
  if (!o.authority.empty()) return o.authority;
  bool ipv6 = o.host.find(':') != std::string::npos;
  std::string a = ipv6 ? "[" + o.host + "]" : o.host;
  if (o.port != 443) a += ":" + std::to_string(o.port);
  return a;
}

const std::uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

// RFC 9113 8.2.2: these must not appear in HTTP/2.
bool isConnectionSpecific(const std::string& name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || name == "host";
}

// Checks a request and brings its header names to lower case. Returns why it
// cannot be sent, or "". Messages name headers, never their values.
std::string normalize(Request& r) {
  if (r.method.empty() || !nghttp2_check_method(bytes(r.method), r.method.size())) {
    return "invalid request: bad method";
  }
  if (r.path.empty() || r.path[0] != '/' || !nghttp2_check_path(bytes(r.path), r.path.size())) {
    return "invalid request: path must start with '/' and hold no spaces or controls";
  }
  for (auto it = r.headers.begin(); it != r.headers.end();) {
    std::string& name = it->first;
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    }
    if (name.empty() || name[0] == ':' || !nghttp2_check_header_name(bytes(name), name.size())) {
      return "invalid request: bad header name '" + name + "'";
    }
    if (isConnectionSpecific(name) || (name == "te" && it->second != "trailers")) {
      return "invalid request: header '" + name + "' is not allowed in HTTP/2";
    }
    if (!nghttp2_check_header_value(bytes(it->second), it->second.size())) {
      return "invalid request: bad value for header '" + name + "'";
    }
    // Set from the body when it is sent: a stale one would break the stream.
    if (name == "content-length") {
      it = r.headers.erase(it);
      continue;
    }
    ++it;
  }
  return {};
}

void invoke(ResponseCallback& cb, Response&& response) {
  if (!cb) return;
  try {
    cb(std::move(response));
  } catch (const std::exception& e) {
    log::error("http2 response callback threw", {{"what", e.what()}});
  } catch (...) {
    log::error("http2 response callback threw", {{"what", "unknown exception"}});
  }
}

}  // namespace

Client::Client(EventLoop& loop, ClientOptions options)
    : loop_(loop),
      options_(std::move(options)),
      authority_(defaultAuthority(options_)),
      backoff_(kMinBackoff),
      timeout_timer_(loop, [this] { onTimeoutTimer(); }),
      reconnect_timer_(loop, [this] { scheduleWork(); }),
      alive_(std::make_shared<bool>(true)) {
  if (options_.host.empty()) throw std::runtime_error("http2 client: host is empty");
  tls_ = std::make_unique<TlsClientContext>(options_.ca_file);
  work_event_ = event_new(loop_.base(), -1, 0, &Client::onWorkEvent, this);
}

Client::~Client() {
  closing_ = true;
  alive_.reset();
  timeout_timer_.cancel();
  reconnect_timer_.cancel();
  // Everything outstanding lands in completed_, then every callback runs.
  // A callback that submits gets "client closed" through the same list.
  if (active_) active_->close(std::string(kErrorClientClosed), Connection::CloseKind::Shutdown);
  for (auto& c : draining_)
    c->close(std::string(kErrorClientClosed), Connection::CloseKind::Shutdown);
  failQueued(std::string(kErrorClientClosed));
  while (Exchange* ex = completed_.popFront()) {
    ResponseCallback cb = std::move(ex->callback);
    Response response = std::move(ex->response);
    release(ex);
    invoke(cb, std::move(response));
  }
  active_.reset();
  draining_.clear();
  event_free(work_event_);
}

void Client::submit(Request request, ResponseCallback callback) {
  Exchange* ex = acquire();
  ex->request = std::move(request);
  ex->callback = std::move(callback);
  if (closing_) {
    reject(ex, std::string(kErrorClientClosed), true);
    return;
  }
  if (std::string invalid = normalize(ex->request); !invalid.empty()) {
    // Not sent, but sending it again cannot help.
    reject(ex, std::move(invalid), false);
    return;
  }
  if (queue_.size() >= options_.max_queued) {
    reject(ex, std::string(kErrorQueueFull), true);
    return;
  }
  ex->deadline_ms = steadyNowMs() + options_.request_timeout;
  deadlines_.pushBack(ex);
  queue_.pushBack(ex);
  if (!timeout_timer_.pending()) timeout_timer_.start(options_.request_timeout);
  scheduleWork();
}

std::size_t Client::inFlight() const {
  std::size_t n = active_ ? active_->openStreams() : 0;
  for (const auto& c : draining_) n += c->openStreams();
  return n;
}

std::uint32_t Client::peerMaxConcurrentStreams() const {
  if (active_ && active_->peerMaxConcurrentStreams() != 0)
    return active_->peerMaxConcurrentStreams();
  return last_peer_max_streams_;
}

bool Client::connected() const {
  return active_ && active_->state() == Connection::State::Ready;
}

void Client::onExchangeDone(Exchange& ex) {
  complete(&ex);
}

void Client::onConnectionChanged() {
  scheduleWork();
}

// All follow-up work (callbacks, connection changes, opening streams, writing)
// happens here, from its own event, once per loop pass: whatever a read or a
// batch of submit() calls produced leaves in one write, and nothing runs
// inside nghttp2's callbacks or the caller's submit().
void Client::scheduleWork() {
  dirty_ = true;
  if (in_work_ || work_pending_) return;
  work_pending_ = true;
  event_active(work_event_, EV_TIMEOUT, 0);
}

void Client::onWorkEvent(int, short, void* arg) {
  static_cast<Client*>(arg)->doWork();
}

void Client::doWork() {
  work_pending_ = false;
  in_work_ = true;
  std::weak_ptr<bool> alive = alive_;
  for (int round = 0; dirty_; ++round) {
    if (round == kMaxWorkRounds) {
      in_work_ = false;
      scheduleWork();
      return;
    }
    dirty_ = false;
    if (!deliverCompleted(alive)) return;  // a callback destroyed the client
    manageConnections();
    pump();
    flushConnections();
  }
  in_work_ = false;
}

bool Client::deliverCompleted(const std::weak_ptr<bool>& alive) {
  // Only what is there now: completions made by these callbacks come next round.
  for (std::size_t n = completed_.size(); n > 0; --n) {
    Exchange* ex = completed_.popFront();
    ResponseCallback cb = std::move(ex->callback);
    Response response = std::move(ex->response);
    release(ex);
    invoke(cb, std::move(response));
    if (alive.expired()) return false;
  }
  return true;
}

void Client::manageConnections() {
  std::erase_if(draining_, [](const std::unique_ptr<Connection>& c) {
    return c->state() == Connection::State::Closed;
  });
  if (active_) {
    switch (active_->state()) {
      case Connection::State::Draining:
        retire(std::move(active_));
        break;
      case Connection::State::Closed:
        if (!active_->wasReady()) failQueued("connect failed: " + active_->closeReason());
        scheduleReconnect(active_->hadResponse());
        if (active_->peerMaxConcurrentStreams() != 0) {
          last_peer_max_streams_ = active_->peerMaxConcurrentStreams();
        }
        active_.reset();
        break;
      default:
        break;
    }
  }
  if (!active_ && !queue_.empty() && !reconnect_timer_.pending()) {
    Connection::Listener& listener = *this;
    active_ = std::make_unique<Connection>(loop_, options_, authority_, *tls_, listener,
                                           ++connection_ids_);
    active_->start();
  }
}

// GOAWAY (or stream ids used up): the connection finishes aside and a new one
// takes the queue at once, unless it never answered anything (a server
// refusing us outright gets the back-off, not a reconnect loop).
void Client::retire(std::unique_ptr<Connection> connection) {
  last_peer_max_streams_ = connection->peerMaxConcurrentStreams();
  if (connection->hadResponse()) {
    backoff_ = kMinBackoff;
  } else {
    scheduleReconnect(false);
  }
  draining_.push_back(std::move(connection));
}

void Client::scheduleReconnect(bool reset_backoff) {
  if (reset_backoff) backoff_ = kMinBackoff;
  reconnect_timer_.start(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void Client::pump() {
  if (!active_) return;
  while (!queue_.empty() && active_->canOpenStream()) {
    Exchange* ex = queue_.popFront();
    switch (active_->open(*ex)) {
      case Connection::OpenResult::Opened:
        break;
      case Connection::OpenResult::NoCapacity:
        queue_.pushFront(ex);
        return;
      case Connection::OpenResult::Failed:
        complete(ex);
        break;
    }
  }
}

void Client::flushConnections() {
  if (active_) active_->flush();
  for (auto& c : draining_) c->flush();
}

void Client::onTimeoutTimer() {
  Millis now = steadyNowMs();
  while (Exchange* ex = deadlines_.front()) {
    if (ex->deadline_ms > now) {
      timeout_timer_.start(ex->deadline_ms - now);
      break;
    }
    deadlines_.remove(ex);
    bool retry_safe = true;
    if (ex->connection != nullptr) {
      retry_safe = !ex->headers_sent;
      ex->connection->cancel(*ex);
    } else {
      queue_.remove(ex);
    }
    ex->response = Response{};
    ex->response.error = std::string(kErrorTimeout);
    ex->response.retry_safe = retry_safe;
    completed_.pushBack(ex);
  }
  scheduleWork();
}

void Client::complete(Exchange* ex) {
  if (DeadlineList::linked(ex)) deadlines_.remove(ex);
  completed_.pushBack(ex);
  scheduleWork();
}

void Client::reject(Exchange* ex, std::string error, bool retry_safe) {
  ex->response.error = std::move(error);
  ex->response.retry_safe = retry_safe;
  complete(ex);
}

void Client::failQueued(const std::string& error) {
  while (Exchange* ex = queue_.popFront()) {
    ex->response.error = error;
    ex->response.retry_safe = true;
    complete(ex);
  }
}

Exchange* Client::acquire() {
  if (pool_.empty()) return new Exchange();
  Exchange* ex = pool_.back().release();
  pool_.pop_back();
  return ex;
}

void Client::release(Exchange* ex) {
  if (pool_.size() >= kPoolLimit) {
    delete ex;
    return;
  }
  ex->reset();
  pool_.emplace_back(ex);
}

}  // namespace sipwake::http2
