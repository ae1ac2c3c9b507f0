// The monitoring files in deploy/monitoring against the real tools: promtool
// checks and unit-tests the alert rules; a real Prometheus scrapes a running
// registrar and pushgw after a short scenario, and every metric the dashboard
// and the alerts name must be there, every panel query must evaluate, and
// every alert rule must evaluate without error.

#include <unistd.h>

#include <chrono>
#include <functional>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/common/crypto/test_keys.h"
#include "tests/support/kamailio_pbx.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

const std::string kMonitoringDir = std::string(SIPWAKE_SOURCE_DIR) + "/deploy/monitoring";
const std::string kAlertsFile = kMonitoringDir + "/alerts.yml";
const std::string kDashboardFile = kMonitoringDir + "/grafana-dashboard.json";

// What the services export today (registration_metrics.cc, call_manager.cc,
// pushgw_metrics.cc): the dashboard must show every one.
const std::set<std::string> kExportedMetrics = {"registrar_bindings",
                                                "registrar_register_requests_total",
                                                "registrar_register_latency_seconds",
                                                "registrar_bindings_failed_total",
                                                "registrar_invites_total",
                                                "registrar_messages_total",
                                                "registrar_device_registers_total",
                                                "registrar_devices_signed_in",
                                                "registrar_relay_legs_total",
                                                "registrar_relayed_calls",
                                                "registrar_invite_to_answer_seconds",
                                                "registrar_calls_lost_total",
                                                "pushgw_pushes_total",
                                                "pushgw_push_latency_seconds",
                                                "pushgw_tokens_removed_total",
                                                "pushgw_queue_depth",
                                                "pushgw_dead_letters_total",
                                                "invite_to_push_seconds",
                                                "registrar_shard_leases",
                                                "registrar_live_instances",
                                                "registrar_redis_up",
                                                "registrar_redis_errors_total",
                                                "pushgw_redis_up",
                                                "pushgw_redis_errors_total",
                                                "pushgw_provider_credential_expiry_timestamp_seconds",
                                                "pushgw_provider_credential_refresh_failures_total",
                                                "registrar_api_requests_total"};

void requireTool(const std::string& path) {
  INFO(path << " is missing: run deploy/install-deps.sh (Debian package prometheus)");
  REQUIRE(::access(path.c_str(), X_OK) == 0);
}

// Our metric names in a text (PromQL, or a whole rule file), histogram
// series suffixes stripped.
std::set<std::string> metricNames(const std::string& text) {
  static const std::regex name_re(R"(\b(?:registrar|pushgw|invite_to_push)_\w+)");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name_re);
       it != std::sregex_iterator(); ++it) {
    std::string name = it->str();
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        name.resize(name.size() - suffix.size());
        break;
      }
    }
    out.insert(name);
  }
  return out;
}

json loadDashboard() {
  std::string text = readFile(kDashboardFile);
  REQUIRE(!text.empty());
  json dashboard = json::parse(text, nullptr, false);
  REQUIRE(!dashboard.is_discarded());
  REQUIRE(dashboard.is_object());
  return dashboard;
}

// Every target expression of every panel, rows' nested panels included.
void collectExpressions(const json& panels, std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& panel : panels) {
    if (panel.contains("panels")) collectExpressions(panel["panels"], out);
    if (!panel.contains("targets")) continue;
    for (const auto& target : panel["targets"]) {
      if (target.contains("expr"))
        out.emplace_back(panel.value("title", "?"), target["expr"].get<std::string>());
    }
  }
}

std::vector<std::pair<std::string, std::string>> panelExpressions(const json& dashboard) {
  std::vector<std::pair<std::string, std::string>> out;
  collectExpressions(dashboard["panels"], out);
  return out;
}

void replaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// A panel expression as Grafana would send it with "All" instances selected.
std::string expandVariables(std::string expr) {
  replaceAll(expr, "${instance}", ".*");
  replaceAll(expr, "$instance", ".*");
  replaceAll(expr, "$__rate_interval", "1m");
  replaceAll(expr, "$__interval", "1m");
  replaceAll(expr, "$__range", "5m");
  return expr;
}

bool hasData(const json& answer) {
  return answer.value("status", "") == "success" && answer["data"]["result"].is_array() &&
         !answer["data"]["result"].empty();
}

// The single value of an instant query answer, or -1 when there is none.
double scalarOf(const json& answer) {
  if (!hasData(answer) || answer["data"]["result"].size() != 1) return -1;
  return std::stod(answer["data"]["result"][0]["value"][1].get<std::string>());
}

constexpr const char* kApnsToken =
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
constexpr const char* kGoneApnsToken =  // the mock answers 410 Unregistered
    "0410aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr const char* kFcmToken = "fcm-token-1";

}  // namespace

TEST_CASE("promtool accepts the alert rules and the example config and the rule unit tests pass",
          "[monitoring]") {
  requireTool("/usr/bin/promtool");
  int status = -1;
  std::string out =
      runCommand("promtool check rules " + shellQuote(kAlertsFile) + " 2>&1", &status);
  INFO(out);
  CHECK(status == 0);

  out = runCommand(
      "promtool check config " + shellQuote(kMonitoringDir + "/prometheus.yml") + " 2>&1", &status);
  INFO(out);
  CHECK(status == 0);

  // alerts_test.yml names alerts.yml relative to itself: run from its folder.
  out = runCommand(
      "cd " + shellQuote(kMonitoringDir) + " && promtool test rules alerts_test.yml 2>&1", &status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("SUCCESS") != std::string::npos);
}

TEST_CASE("the Grafana dashboard is valid JSON with its variables and a panel for every metric",
          "[monitoring]") {
  json dashboard = loadDashboard();
  CHECK(dashboard.value("schemaVersion", 0) >= 37);
  CHECK(!dashboard.value("uid", "").empty());

  std::set<std::string> variables;
  for (const auto& v : dashboard["templating"]["list"])
    variables.insert(v.value("name", "") + ":" + v.value("type", ""));
  CHECK(variables.count("DS_PROMETHEUS:datasource") == 1);
  CHECK(variables.count("instance:query") == 1);

  auto expressions = panelExpressions(dashboard);
  REQUIRE(expressions.size() >= 10);
  std::string all;
  for (const auto& [title, expr] : expressions) all += expr + "\n";
  std::set<std::string> shown = metricNames(all);
  for (const auto& name : kExportedMetrics) {
    INFO("no panel shows " << name);
    CHECK(shown.count(name) == 1);
  }
  // Every panel queries through the data source variable, so an import can
  // pick the data source.
  for (const auto& panel : dashboard["panels"]) {
    if (panel.value("type", "") == "row") continue;
    INFO(panel.value("title", "?"));
    CHECK(panel["datasource"].value("uid", "") == "${DS_PROMETHEUS}");
  }
}

TEST_CASE("a real Prometheus scraping the services has every metric the dashboard and alerts use",
          "[monitoring]") {
  requireTool(PrometheusServer::kBinary);
  json dashboard = loadDashboard();
  auto expressions = panelExpressions(dashboard);
  std::string alerts_text = readFile(kAlertsFile);
  REQUIRE(!alerts_text.empty());
  std::set<std::string> used = metricNames(alerts_text);
  for (const auto& [title, expr] : expressions) {
    auto names = metricNames(expr);
    used.insert(names.begin(), names.end());
  }
  REQUIRE(used.size() >= kExportedMetrics.size());

  RedisServer redis;
  KamailioPbx pbx;
  PushTestSetup push;
  // The device listener on, so its metrics and the relay's are exported too.
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "4s"},
                                           {"REGISTRAR_CALL_DEVICE_CONNECT_TIMEOUT", "3s"},
                                           {"REGISTRAR_DEVICE_LISTEN", "127.0.0.1:" + std::to_string(freePort())}});
  PushgwProcess pushgw(redis.url(), push.apps_file, "pushgw-1");
  SipTestUa caller;
  PrometheusServer prometheus(
      {{"sipwake-registrar", registrar.apiPort()}, {"sipwake-pushgw", pushgw.metricsPort()}},
      kAlertsFile);

  // A short life: one binding with a live APNs token, a gone one and an FCM
  // token; a call that rings, gets its pushes and is cancelled; a MESSAGE.
  json body = bindingBody("1000", pbx.port(), "udp");
  body["devices"] = json::array(
      {{{"id", "iphone"}, {"provider", "apns"}, {"token", kApnsToken}, {"app", "com.example.talk"}},
       {{"id", "old-iphone"},
        {"provider", "apns"},
        {"token", kGoneApnsToken},
        {"app", "com.example.talk"}},
       {{"id", "pixel"}, {"provider", "fcm"}, {"token", kFcmToken}, {"app", "example-project"}}});
  REQUIRE(registrar.put("phone", body).status / 100 == 2);
  REQUIRE(registrar.waitForState("phone", "registered", 10000));

  const std::string proxy = "sip:127.0.0.1:" + std::to_string(pbx.port()) + ";transport=udp";
  int call =
      caller.invite("sip:1000@127.0.0.1", proxy, "sip:alice@127.0.0.1", "Alice",
                    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    "m=audio 40000 RTP/AVP 0\r\n");
  REQUIRE(caller.waitForResponse(
      call,
      [](const SipMessageRecord& r) {
        return r.status == 180 && r.header("x-push-status") == "Push-Notification-Sent";
      },
      5000));
  REQUIRE(waitUntil([&] { return pushgw.metric("pushgw_tokens_removed_total") >= 1; }, 5000));
  REQUIRE(caller.cancel(call));
  REQUIRE(caller.waitForFinal(call, 5000));
  CHECK(caller.finalStatus(call) == 487);
  CHECK(caller.message("sip:1000@127.0.0.1", proxy, "sip:bob@127.0.0.1", "hello") == 202);

  // Both services are scraped under the job names the alerts use.
  {
    json answer;
    bool up = waitUntil(
        [&] {
          answer = prometheus.query(R"(count(up{job=~"sipwake-registrar|sipwake-pushgw"} == 1))");
          return scalarOf(answer) == 2;
        },
        15000, 250);
    INFO(answer.dump());
    CHECK(up);
  }

  // Every metric named by a panel or an alert has series in Prometheus.
  {
    std::set<std::string> missing = used;
    waitUntil(
        [&] {
          for (auto it = missing.begin(); it != missing.end();) {
            json answer = prometheus.query("count({__name__=~\"" + *it + "(_bucket)?\"})");
            it = hasData(answer) ? missing.erase(it) : std::next(it);
          }
          return missing.empty();
        },
        15000, 500);
    std::string list;
    for (const auto& name : missing) list += " " + name;
    INFO("metrics used but not exported:" << list);
    CHECK(missing.empty());
  }

  // The label values the panels and alerts select on are the ones exported.
  {
    // What the scenario did, as Prometheus saw it.
    const std::vector<std::pair<std::string, double>> expected = {
        {R"(sum(registrar_bindings{state="registered"}))", 1},
        {R"(sum(registrar_invites_total{result="cancelled"}))", 1},
        {R"(sum(registrar_messages_total{result="accepted"}))", 1},
        {R"(sum(pushgw_tokens_removed_total{provider="apns"}))", 1},
        {R"(count(registrar_register_requests_total{result=~"ok|challenged|too_brief"}))", 3},
        {R"(count(registrar_bindings{state=~"registering|registered|retrying"}))", 3},
        {R"(count(registrar_bindings_failed_total{reason=~"auth_rejected|rejected|unreachable"}))",
         3},
        {R"(count(pushgw_pushes_total{provider=~"apns|fcm", result=~"delivered|invalid_token|permanent_error"}))",
         6},
        {R"(count(pushgw_dead_letters_total{cause=~"malformed|redelivered|undeliverable"}))", 3},
        {R"(min(registrar_redis_up))", 1},
        {R"(min(pushgw_redis_up))", 1},
        {R"(count(registrar_redis_errors_total{kind=~"connect|io|role_change"}))", 3},
        {R"(count(pushgw_redis_errors_total{kind=~"connect|io|role_change"}))", 3},
        {R"(sum(registrar_redis_errors_total) + sum(pushgw_redis_errors_total))", 0},
        // The FCM push got an access token that runs for about an hour.
        {R"(count(pushgw_provider_credential_expiry_timestamp_seconds{provider="fcm", app="example-project"} - time() > 3000))",
         1},
        {R"(sum(pushgw_provider_credential_refresh_failures_total))", 0},
        {R"(sum(registrar_api_requests_total{route="PUT /v1/bindings/{id}", code="201"}))", 1},
    };
    for (const auto& [expr, value] : expected) {
      json answer;
      bool seen = waitUntil(
          [&] {
            answer = prometheus.query(expr);
            return scalarOf(answer) == value;
          },
          15000, 250);
      INFO(expr << " should be " << value << ", Prometheus answered " << answer.dump());
      CHECK(seen);
    }
    json answer;
    bool delivered = waitUntil(
        [&] {
          answer = prometheus.query(
              R"(sum by (provider) (pushgw_pushes_total{result="delivered"}) >= 1)");
          return hasData(answer) && answer["data"]["result"].size() == 2;
        },
        15000, 250);
    INFO("deliveries by provider: " << answer.dump());
    CHECK(delivered);
  }

  // Every dashboard panel query evaluates and returns data.
  {
    for (const auto& [title, expr] : expressions) {
      std::string expanded = expandVariables(expr);
      json answer;
      bool ok = waitUntil(
          [&] {
            answer = prometheus.query(expanded);
            return answer.value("status", "") != "success" || hasData(answer);
          },
          15000, 250);
      INFO("panel \"" << title << "\": " << expanded << "\nanswer: " << answer.dump());
      CHECK(expanded.find('$') == std::string::npos);  // a variable the test does not know
      CHECK(answer.value("status", "") == "success");
      CHECK(ok);
    }
  }

  // Every alert rule evaluates without error and none fires on a healthy system.
  {
    json rules;
    std::string problems;
    bool evaluated = waitUntil(
        [&] {
          rules = prometheus.get("/api/v1/rules");
          if (rules.value("status", "") != "success") return false;
          problems.clear();
          std::size_t count = 0;
          for (const auto& group : rules["data"]["groups"]) {
            for (const auto& rule : group["rules"]) {
              ++count;
              if (rule.value("health", "") != "ok") {
                problems += rule.value("name", "?") + " health=" + rule.value("health", "") + " " +
                            rule.value("lastError", "") + "\n";
              }
            }
          }
          return count > 0 && problems.empty();
        },
        15000, 250);
    INFO(problems << rules.dump());
    REQUIRE(evaluated);
    json alerts = prometheus.get("/api/v1/alerts");
    INFO(alerts.dump());
    REQUIRE(alerts.value("status", "") == "success");
    CHECK(alerts["data"]["alerts"].empty());
  }

  // A stopped pushgw makes SipwakeInstanceDown pending for its instance.
  {
    const std::string instance = "127.0.0.1:" + std::to_string(pushgw.metricsPort());
    pushgw.stop();
    json answer;
    bool pending = waitUntil(
        [&] {
          answer =
              prometheus.query(R"(ALERTS{alertname="SipwakeInstanceDown", job="sipwake-pushgw"})");
          return hasData(answer) && answer["data"]["result"].size() == 1;
        },
        15000, 250);
    INFO(answer.dump());
    REQUIRE(pending);
    const auto& labels = answer["data"]["result"][0]["metric"];
    CHECK(labels.value("instance", "") == instance);
    CHECK(labels.value("alertstate", "") == "pending");  // for: 2m
    CHECK(labels.value("severity", "") == "critical");
  }
}

TEST_CASE("a service account the token endpoint refuses shows as failed renewals and no FCM credential",
          "[monitoring]") {
  RedisServer redis;
  PushTestSetup push;
  // The same account signed by another key: the mock's token endpoint
  // answers invalid_grant, as Google does for a deleted or disabled key.
  json account = json::parse(readFile(push.service_account_file));
  sipwake::crypto::EvpKey other_key = generateRsaKey();
  account["private_key"] = privateKeyPem(other_key.get());
  writeFile(push.service_account_file, account.dump(2));
  PushgwProcess pushgw(redis.url(), push.apps_file, "pushgw-1");
  const std::string failures = "pushgw_provider_credential_refresh_failures_total";
  const std::string app = R"(app="example-project")";
  CHECK(pushgw.metric(failures, app) == 0);  // the series is there before any push

  RedisClient client(redis.port());
  json job = {{"type", "message"},
              {"tenant", "acme"},
              {"binding", "phone"},
              {"device", {{"id", "pixel"}, {"provider", "fcm"}, {"token", kFcmToken}, {"app", "example-project"}}},
              {"body", "hello"},
              {"sent_at", 0},
              {"expires_at", 4102444800000LL}};
  client.command({"XADD", "sipwake:push:jobs", "*", "job", job.dump()});

  // The first request and its retries (1 s, 2 s...) each count.
  bool counted = waitUntil([&] { return pushgw.metric(failures, app) >= 2; }, 10000);
  INFO(pushgw.metricsText());
  CHECK(counted);
  CHECK(pushgw.metric("pushgw_provider_credential_expiry_timestamp_seconds", app) == 0);
  CHECK(push.fcm->accessTokensIssued() == 0);
  CHECK(push.fcm->pushes().empty());
  // Nothing of the key in the metrics: not one line of its PEM body.
  std::string text = pushgw.metricsText();
  std::string pem = privateKeyPem(other_key.get());
  std::string body_line = pem.substr(pem.find('\n') + 1, 64);
  REQUIRE(body_line.size() == 64);
  CHECK(text.find(body_line) == std::string::npos);
}
