#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "common/http2/http2_message.h"

namespace sipwake::http2 {

class Connection;

// Runs exactly once per submitted request, on the client's loop thread.
using ResponseCallback = std::function<void(Response&&)>;

// Where an Exchange is linked. An exchange sits in at most one list per slot:
// Place: the client's queue, a connection's open streams, or the client's
// completed list; Deadline: the client's timeout order (submission order).
enum class ExchangeSlot : int { Place = 0, Deadline = 1 };

// One request on its way through the client: queued, then on a stream of a
// Connection, then completed and waiting for its callback. Pooled by the
// Client, so a steady flow of requests reuses the same objects.
struct Exchange {
  Request request;
  ResponseCallback callback;
  Response response;
  std::int64_t deadline_ms = 0;      // steady clock
  Connection* connection = nullptr;  // while on a stream
  std::int32_t stream_id = -1;
  std::size_t body_offset = 0;     // request body bytes handed to nghttp2
  bool headers_sent = false;       // HEADERS serialised: from then on the server may process it
  bool response_complete = false;  // END_STREAM received from the server

  // Intrusive links, one pair per ExchangeSlot.
  Exchange* prev[2] = {nullptr, nullptr};
  Exchange* next[2] = {nullptr, nullptr};
  bool linked[2] = {false, false};

  // Back to the freshly constructed state, keeping no payload.
  void reset() {
    request = Request{};
    callback = nullptr;
    response = Response{};
    deadline_ms = 0;
    connection = nullptr;
    stream_id = -1;
    body_offset = 0;
    headers_sent = false;
    response_complete = false;
  }
};

// A FIFO of exchanges threaded through their links for one slot: O(1) push,
// pop and removal from the middle, no allocation.
template <ExchangeSlot kSlot>
class ExchangeList {
 public:
  ExchangeList() = default;
  ExchangeList(const ExchangeList&) = delete;
  ExchangeList& operator=(const ExchangeList&) = delete;

  bool empty() const { return head_ == nullptr; }
  std::size_t size() const { return size_; }
  Exchange* front() const { return head_; }
  static Exchange* next(const Exchange* e) { return e->next[kIndex]; }
  static bool linked(const Exchange* e) { return e->linked[kIndex]; }

  void pushBack(Exchange* e) {
    e->prev[kIndex] = tail_;
    e->next[kIndex] = nullptr;
    e->linked[kIndex] = true;
    if (tail_ != nullptr) {
      tail_->next[kIndex] = e;
    } else {
      head_ = e;
    }
    tail_ = e;
    ++size_;
  }

  void pushFront(Exchange* e) {
    e->prev[kIndex] = nullptr;
    e->next[kIndex] = head_;
    e->linked[kIndex] = true;
    if (head_ != nullptr) {
      head_->prev[kIndex] = e;
    } else {
      tail_ = e;
    }
    head_ = e;
    ++size_;
  }

  // e must be in this list.
  void remove(Exchange* e) {
    Exchange* p = e->prev[kIndex];
    Exchange* n = e->next[kIndex];
    if (p != nullptr) {
      p->next[kIndex] = n;
    } else {
      head_ = n;
    }
    if (n != nullptr) {
      n->prev[kIndex] = p;
    } else {
      tail_ = p;
    }
    e->prev[kIndex] = e->next[kIndex] = nullptr;
    e->linked[kIndex] = false;
    --size_;
  }

  Exchange* popFront() {
    Exchange* e = head_;
    if (e != nullptr) remove(e);
    return e;
  }

 private:
  static constexpr int kIndex = static_cast<int>(kSlot);
  Exchange* head_ = nullptr;
  Exchange* tail_ = nullptr;
  std::size_t size_ = 0;
};

using PlaceList = ExchangeList<ExchangeSlot::Place>;
using DeadlineList = ExchangeList<ExchangeSlot::Deadline>;

}  // namespace sipwake::http2
