#include "common/event/event_loop.h"

#include <event2/event.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <stdexcept>

namespace sipwake {

EventLoop::EventLoop() : base_(event_base_new()) {
  if (base_ == nullptr) throw std::runtime_error("event_base_new failed");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
  wake_event_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &EventLoop::onWake, this);
  event_add(wake_event_, nullptr);
  loop_thread_ = std::this_thread::get_id();
}

EventLoop::~EventLoop() {
  event_free(wake_event_);
  close(wake_fd_);
  event_base_free(base_);
}

void EventLoop::run() {
  loop_thread_ = std::this_thread::get_id();
  event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
}

void EventLoop::stop() {
  post([this] { event_base_loopbreak(base_); });
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  // A full counter still wakes the loop; nothing to do on EAGAIN.
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

bool EventLoop::inLoopThread() const { return std::this_thread::get_id() == loop_thread_; }

void EventLoop::onWake(int fd, short, void* arg) {
  std::uint64_t count;
  [[maybe_unused]] auto n = read(fd, &count, sizeof count);
  static_cast<EventLoop*>(arg)->drain();
}

void EventLoop::drain() {
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  for (auto& fn : batch) fn();
}

LoopTimer::LoopTimer(EventLoop& loop, std::function<void()> fn)
    : ev_(event_new(loop.base(), -1, 0, &LoopTimer::onFire, this)), fn_(std::move(fn)) {}

LoopTimer::~LoopTimer() { event_free(ev_); }

void LoopTimer::start(Millis delay) {
  if (delay < 0) delay = 0;
  timeval tv{static_cast<time_t>(delay / 1000), static_cast<suseconds_t>((delay % 1000) * 1000)};
  event_add(ev_, &tv);
}

void LoopTimer::cancel() { event_del(ev_); }

bool LoopTimer::pending() const { return event_pending(ev_, EV_TIMEOUT, nullptr) != 0; }

void LoopTimer::onFire(int, short, void* arg) { static_cast<LoopTimer*>(arg)->fn_(); }

LoopThread::LoopThread(const char* name) : loop_(std::make_unique<EventLoop>()) {
  thread_ = std::thread([this, name] {
    pthread_setname_np(pthread_self(), name);
    loop_->run();
  });
}

LoopThread::~LoopThread() { stop(); }

void LoopThread::stop() {
  if (!thread_.joinable()) return;
  loop_->stop();
  thread_.join();
}

}  // namespace sipwake
