#ifndef POLICY_COMMON_PG_NOTIFICATION_FEED_H_
#define POLICY_COMMON_PG_NOTIFICATION_FEED_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "pqxx/pqxx"

namespace policy::pg {

// Keeps a cache of PostgreSQL state current: one connection LISTENs on a channel that the
// tables' triggers NOTIFY with the changed row's key, and a heartbeat proves the view fresh.
// The heartbeat also proves that it reached the very server session that LISTENs (by
// pg_backend_pid() and pg_listening_channels()); when not, as behind a pooler in transaction
// or statement mode, the session ends with FAILED_PRECONDITION ("LISTEN needs a direct or
// session-pooled connection"), logged, and in_sync is not called, so the consumer turns
// stale rather than serve a view that misses changes.
//
// Contract with the consumer, all calls made from the feed's own thread:
//  - resync(connection): after every (re)connect, once LISTEN is active; reload everything.
//  - changed(connection, payloads): rows named by `payloads` changed; reload them.
//  - in_sync(as_of): every change committed before `as_of` has been passed to the consumer.
//    Called at least every `heartbeat` while the database answers, and never while it does
//    not, so `now - as_of` bounds the cache's staleness. Nor while the feed's clock and the
//    database server's disagree by more than `max_clock_skew` (when finite): a consumer that
//    judges times (expiry, an overlap's end) by a clock that is off would honour them late
//    or early, so it turns stale instead (logged once per episode).
// A callback returning an error drops the connection and starts over with a resync.
// Which server session answered a heartbeat.
struct ListenerSession {
  int backend_pid = 0;     // pg_backend_pid()
  bool listening = false;  // Whether that session LISTENs on the feed's channel.
};

// OK when the server's clock, read between `sent` and `received` on the feed's clock, is
// within `max_skew` of that clock; FAILED_PRECONDITION naming the skew otherwise.
absl::Status CheckClockSkew(absl::Time sent, absl::Time received, absl::Time server_time,
                            absl::Duration max_skew);

// OK when `answering` is the session that took the LISTEN (`listener_pid`) and it still
// listens on `channel`; FAILED_PRECONDITION naming both sessions otherwise.
absl::Status CheckListenerSession(const std::string& channel, int listener_pid,
                                  const ListenerSession& answering);

class NotificationFeed {
 public:
  struct Callbacks {
    std::function<absl::Status(pqxx::connection&)> resync;
    std::function<absl::Status(pqxx::connection&, const std::vector<std::string>&)> changed;
    std::function<void(absl::Time)> in_sync;
  };

  NotificationFeed(std::string url, std::string channel, Callbacks callbacks, Clock* clock,
                   absl::Duration heartbeat = absl::Milliseconds(200),
                   absl::Duration max_clock_skew = absl::InfiniteDuration());
  ~NotificationFeed();  // Stops the thread.
  NotificationFeed(const NotificationFeed&) = delete;
  NotificationFeed& operator=(const NotificationFeed&) = delete;

  void Start();
  void Stop();

 private:
  void Run();
  // One connection's life; returns why it ended. Sets *synced once it delivered a resync.
  absl::Status Session(bool* synced);
  bool Stopping();

  const std::string connection_string_;
  const std::string channel_;
  const Callbacks callbacks_;
  Clock* const clock_;
  const absl::Duration heartbeat_;
  const absl::Duration max_clock_skew_;
  // Whether the last check found the clocks apart (the feed's thread only).
  bool skewed_ = false;
  // Whether the server's clock, `server_time` read between `sent` and `received`, is within
  // bound; logs when that changes.
  bool ClocksAgree(absl::Time sent, absl::Time received, absl::Time server_time);
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_NOTIFICATION_FEED_H_
