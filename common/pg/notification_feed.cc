#include "common/pg/notification_feed.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/pg/pool.h"

namespace policy::pg {
namespace {

class Collector : public pqxx::notification_receiver {
 public:
  Collector(pqxx::connection_base& c, const std::string& channel)
      : pqxx::notification_receiver(c, channel) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    payloads.push_back(payload);
  }
  std::vector<std::string> payloads;
};

// The backend answering on `c` and whether it LISTENs on `channel`; `*server_time`: the
// server's clock_timestamp() as it answered.
ListenerSession QueryListenerSession(pqxx::connection& c, const std::string& channel,
                                     absl::Time* server_time) {
  pqxx::nontransaction tx(c);
  pqxx::row row = tx.exec_params1(
      "SELECT pg_backend_pid(), $1 = ANY (ARRAY(SELECT pg_listening_channels())), "
      "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
      channel);
  *server_time = absl::FromUnixMicros(row[2].as<int64_t>());
  return {.backend_pid = row[0].as<int>(), .listening = row[1].as<bool>()};
}

}  // namespace

absl::Status CheckListenerSession(const std::string& channel, int listener_pid,
                                  const ListenerSession& answering) {
  if (answering.backend_pid == listener_pid && answering.listening) return absl::OkStatus();
  const std::string what =
      answering.backend_pid == listener_pid
          ? absl::StrCat("backend ", listener_pid, " no longer listens on ", channel)
          : absl::StrCat("the LISTEN on ", channel, " went to backend ", listener_pid,
                         " but backend ", answering.backend_pid, " answered the heartbeat");
  return absl::FailedPreconditionError(
      absl::StrCat("LISTEN needs a direct or session-pooled connection: ", what,
                   " (behind a pooler in transaction or statement mode notifications are lost)"));
}

absl::Status CheckClockSkew(absl::Time sent, absl::Time received, absl::Time server_time,
                            absl::Duration max_skew) {
  if (server_time >= sent - max_skew && server_time <= received + max_skew) {
    return absl::OkStatus();
  }
  const absl::Duration skew = server_time < sent ? server_time - sent : server_time - received;
  return absl::FailedPreconditionError(
      absl::StrCat("the database server's clock is ", absl::FormatDuration(skew),
                   " off this host's (allowed: ", absl::FormatDuration(max_skew), ")"));
}

NotificationFeed::NotificationFeed(std::string url, std::string channel, Callbacks callbacks,
                                   Clock* clock, absl::Duration heartbeat,
                                   absl::Duration max_clock_skew)
    : connection_string_(ConnectionString(url, heartbeat * 5)),
      channel_(std::move(channel)),
      callbacks_(std::move(callbacks)),
      clock_(clock),
      heartbeat_(heartbeat),
      max_clock_skew_(max_clock_skew) {}

bool NotificationFeed::ClocksAgree(absl::Time sent, absl::Time received, absl::Time server_time) {
  if (max_clock_skew_ == absl::InfiniteDuration()) return true;
  absl::Status s = CheckClockSkew(sent, received, server_time, max_clock_skew_);
  if (!s.ok() && !skewed_) {
    LogError("host and database clocks disagree; not in sync until they agree",
             {{"channel", channel_}, {"status", s.ToString()}});
  } else if (s.ok() && skewed_) {
    LogInfo("host and database clocks agree again", {{"channel", channel_}});
  }
  skewed_ = !s.ok();
  return s.ok();
}

NotificationFeed::~NotificationFeed() { Stop(); }

void NotificationFeed::Start() {
  thread_ = std::thread([this] { Run(); });
}

void NotificationFeed::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool NotificationFeed::Stopping() {
  absl::MutexLock lock(&mu_);
  return stop_;
}

void NotificationFeed::Run() {
  absl::Duration backoff = heartbeat_;
  while (!Stopping()) {
    bool synced = false;
    absl::Status ended = Session(&synced);
    if (Stopping()) break;
    if (synced) backoff = heartbeat_;  // A healthy session resets the backoff.
    if (absl::IsFailedPrecondition(ended)) {
      LogError("notification feed cannot keep its session; retrying",
               {{"channel", channel_}, {"status", ended.ToString()}});
    } else {
      LogWarning("notification feed session ended; retrying",
                 {{"channel", channel_}, {"status", ended.ToString()}});
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status NotificationFeed::Session(bool* synced) {
  try {
    pqxx::connection c(connection_string_);
    Collector collector(c, channel_);
    // The backend that took the LISTEN. Every heartbeat must be answered by that backend,
    // still listening: behind a pooler in transaction mode statements land on whichever
    // server session is free, notifications go to a session nobody reads, and a plain
    // SELECT 1 would still succeed.
    absl::Time server_time;
    const ListenerSession listener = QueryListenerSession(c, channel_, &server_time);
    if (absl::Status s = CheckListenerSession(channel_, listener.backend_pid, listener); !s.ok()) {
      return s;
    }
    // LISTEN is active before the resync reads, so nothing committed after that read is
    // missed; a change seen twice is harmless.
    absl::Time as_of = clock_->Now();
    if (absl::Status s = callbacks_.resync(c); !s.ok()) return s;
    absl::Time sent = clock_->Now();
    ListenerSession answering = QueryListenerSession(c, channel_, &server_time);
    if (absl::Status s = CheckListenerSession(channel_, listener.backend_pid, answering); !s.ok()) {
      return s;
    }
    if (ClocksAgree(sent, clock_->Now(), server_time)) callbacks_.in_sync(as_of);
    *synced = true;
    LogInfo("notification feed in sync", {{"channel", channel_}});
    while (!Stopping()) {
      const int64_t micros = absl::ToInt64Microseconds(heartbeat_);
      c.await_notification(micros / 1'000'000, micros % 1'000'000);
      // A round trip proves the connection alive; the server sends every notification
      // committed before it started ahead of its reply.
      as_of = clock_->Now();
      answering = QueryListenerSession(c, channel_, &server_time);
      const absl::Time received = clock_->Now();
      if (absl::Status s = CheckListenerSession(channel_, listener.backend_pid, answering);
          !s.ok()) {
        return s;
      }
      c.get_notifs();
      if (!collector.payloads.empty()) {
        std::vector<std::string> payloads;
        payloads.swap(collector.payloads);
        std::sort(payloads.begin(), payloads.end());
        payloads.erase(std::unique(payloads.begin(), payloads.end()), payloads.end());
        if (absl::Status s = callbacks_.changed(c, payloads); !s.ok()) return s;
      }
      if (ClocksAgree(as_of, received, server_time)) callbacks_.in_sync(as_of);
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

}  // namespace policy::pg
