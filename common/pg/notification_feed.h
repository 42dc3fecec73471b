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
//
// Contract with the consumer, all calls made from the feed's own thread:
//  - resync(connection): after every (re)connect, once LISTEN is active; reload everything.
//  - changed(connection, payloads): rows named by `payloads` changed; reload them.
//  - in_sync(as_of): every change committed before `as_of` has been passed to the consumer.
//    Called at least every `heartbeat` while the database answers, and never while it does
//    not, so `now - as_of` bounds the cache's staleness.
// A callback returning an error drops the connection and starts over with a resync.
class NotificationFeed {
 public:
  struct Callbacks {
    std::function<absl::Status(pqxx::connection&)> resync;
    std::function<absl::Status(pqxx::connection&, const std::vector<std::string>&)> changed;
    std::function<void(absl::Time)> in_sync;
  };

  NotificationFeed(std::string url, std::string channel, Callbacks callbacks, Clock* clock,
                   absl::Duration heartbeat = absl::Milliseconds(200));
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
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_NOTIFICATION_FEED_H_
