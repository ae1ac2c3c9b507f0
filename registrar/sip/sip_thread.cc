#include "registrar/sip/sip_thread.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <future>
#include <stdexcept>

#include "common/log/logger.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

struct SofiaRoot {
  su_root_t* root = nullptr;
  int wake_index = -1;
};

SipThread::SipThread() : sofia_(std::make_unique<SofiaRoot>()) {}

SipThread::~SipThread() {
  if (thread_.joinable()) stop(nullptr);
}

void* SipThread::root() const { return sofia_->root; }

void SipThread::start(std::function<void()> init) {
  std::promise<void> started;
  auto ready = started.get_future();
  thread_ = std::thread([this, init = std::move(init), &started]() mutable {
    pthread_setname_np(pthread_self(), "sip");
    try {
      run([&] {
        init();
        started.set_value();
      });
    } catch (...) {
      try {
        started.set_exception(std::current_exception());
      } catch (const std::future_error&) {
        log::error("SIP thread stopped by an exception");
      }
    }
  });
  try {
    ready.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

namespace {

// sofia computes its poll timeout with su_duration(), which truncates to whole
// milliseconds: in the last sub-millisecond before any timer (ours, and nta's
// per-transaction timers) it polls with timeout 0 in a loop. Measured: ~0.5 ms
// of spinning per timer, 20 % CPU at 300 refreshes/s. Reading the clock in
// whole milliseconds makes every remaining timeout a whole number of them, so
// the loop sleeps instead; timers fire at most 1 ms late.
void wholeMillisecondClock(su_time_t* tv) { tv->tv_usec -= tv->tv_usec % 1000; }

}  // namespace

void SipThread::run(std::function<void()> init) {
  _su_time = wholeMillisecondClock;
  su_init();
  sofia_->root = su_root_create(nullptr);
  if (!sofia_->root) throw std::runtime_error("su_root_create failed");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  su_wait_t wait[1];
  su_wait_create(wait, wake_fd_, SU_WAIT_IN);
  sofia_->wake_index = su_root_register(
      sofia_->root, wait,
      [](su_root_magic_t* magic, su_wait_t* w, su_wakeup_arg_t* arg) -> int {
        return onWake(magic, w, arg);
      },
      reinterpret_cast<su_wakeup_arg_t*>(this), 0);
  struct Cleanup {
    SipThread* self;
    ~Cleanup() {
      su_root_deregister(self->sofia_->root, self->sofia_->wake_index);
      su_root_destroy(self->sofia_->root);
      self->sofia_->root = nullptr;
      close(self->wake_fd_);
      su_deinit();
    }
  } cleanup{this};
  init();
  drain();
  su_root_run(sofia_->root);
}

void SipThread::stop(std::function<void()> teardown) {
  if (!thread_.joinable()) return;
  post([this, teardown = std::move(teardown)] {
    if (teardown) teardown();
    drain();
    su_root_break(sofia_->root);
  });
  thread_.join();
}

void SipThread::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

int SipThread::onWake(void*, void*, void* arg) {
  auto* self = static_cast<SipThread*>(arg);
  std::uint64_t count;
  [[maybe_unused]] auto n = read(self->wake_fd_, &count, sizeof count);
  self->drain();
  return 0;
}

void SipThread::drain() {
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  for (auto& fn : batch) fn();
}

SipThread::Timer::Timer(SipThread& thread, std::function<void()> fn)
    : timer_(su_timer_create(su_root_task(static_cast<su_root_t*>(thread.root())), 0)),
      fn_(std::move(fn)) {}

SipThread::Timer::~Timer() { su_timer_destroy(static_cast<su_timer_t*>(timer_)); }

void SipThread::Timer::wakeAt(Millis when) {
  if (armed_ && at_ <= when) return;
  at_ = when;
  armed_ = true;
  Millis now = SystemClock::instance().now();
  su_duration_t delay = static_cast<su_duration_t>(std::max<Millis>(0, when - now));
  su_timer_set_interval(
      static_cast<su_timer_t*>(timer_),
      [](su_root_magic_t* magic, su_timer_t* t, su_timer_arg_t* arg) { onFire(magic, t, arg); },
      reinterpret_cast<su_timer_arg_t*>(this), delay);
}

void SipThread::Timer::onFire(void*, void*, void* arg) {
  auto* self = static_cast<Timer*>(arg);
  self->armed_ = false;
  self->fn_();
}

}  // namespace sipwake::registrar
