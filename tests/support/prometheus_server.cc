#include "tests/support/prometheus_server.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace sipwake::testing {
namespace {

// application/x-www-form-urlencoded value.
std::string formEncode(const std::string& value) {
  std::string out;
  for (unsigned char c : value) {
    bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '~';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

PrometheusServer::PrometheusServer(std::vector<PrometheusTarget> targets, std::string rule_file)
    : targets_(std::move(targets)), rule_file_(std::move(rule_file)), port_(freePort()) {
  startOnFreePorts([this] { port_ = freePort(); }, [this] { start(); }, "address already in use");
}

PrometheusServer::~PrometheusServer() = default;

std::string PrometheusServer::log() const {
  return process_ ? process_->readLog() : "";
}

void PrometheusServer::start() {
  // JSON is valid YAML: build the configuration as JSON, which also quotes
  // the paths safely.
  nlohmann::json config = {
      {"global",
       {{"scrape_interval", "1s"}, {"scrape_timeout", "1s"}, {"evaluation_interval", "1s"}}},
      {"scrape_configs", nlohmann::json::array()}};
  if (!rule_file_.empty()) config["rule_files"] = {rule_file_};
  for (const auto& t : targets_) {
    config["scrape_configs"].push_back(
        {{"job_name", t.job},
         {"metrics_path", "/metrics"},
         {"static_configs", {{{"targets", {"127.0.0.1:" + std::to_string(t.port)}}}}}});
  }
  const std::string config_file = dir_.file("prometheus.yml");
  writeFile(config_file, config.dump(2) + "\n");

  process_.reset();
  client_.reset();
  // clang-format off
  std::vector<std::string> argv = {
      kBinary,
      "--config.file=" + config_file,
      "--storage.tsdb.path=" + dir_.file("data"),
      "--web.listen-address=127.0.0.1:" + std::to_string(port_),
      "--log.level=info",
  };
  // clang-format on
  process_ = std::make_unique<ChildProcess>(argv, dir_.file("prometheus.log"));
  HttpClientOptions options;
  options.timeout_ms = 5000;
  client_ = std::make_unique<HttpClient>("127.0.0.1", port_, options);
  bool ready = waitUntil(
      [this] {
        if (!process_->running()) return true;
        try {
          return exchange("GET", "/-/ready", "", "").status == 200;
        } catch (const std::exception&) {
          return false;  // not listening yet
        }
      },
      30000, 100);
  if (!ready || !process_->running()) {
    std::string log = process_->readLog();
    process_.reset();
    throw std::runtime_error("prometheus did not become ready on port " + std::to_string(port_) +
                             "; log:\n" + log);
  }
}

// Prometheus (Go's net/http) answers HTTP/1.1 requests of unknown length
// chunked, which HttpClient::request() does not decode; an HTTP/1.0 request
// gets the body as it is, ended by the close.
HttpReply PrometheusServer::exchange(const std::string& method, const std::string& target,
                                     const std::string& body, const std::string& content_type) {
  std::string request = method + " " + target +
                        " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                        "\r\nConnection: close\r\n";
  if (!content_type.empty()) request += "Content-Type: " + content_type + "\r\n";
  if (method == "POST") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;
  std::string raw = client_->sendRaw(request);

  HttpReply reply;
  std::size_t head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 7, "HTTP/1.") != 0 || raw.size() < 12 || head_end == std::string::npos) {
    reply.body = raw;  // parse() reports it
    return reply;
  }
  reply.status = std::atoi(raw.substr(9, 3).c_str());
  std::size_t line = raw.find("\r\n") + 2;
  while (line < head_end) {
    std::size_t end = raw.find("\r\n", line);
    std::string header = raw.substr(line, end - line);
    std::size_t colon = header.find(':');
    if (colon != std::string::npos) {
      std::string name = header.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::size_t value = header.find_first_not_of(" \t", colon + 1);
      reply.headers.emplace_back(name, value == std::string::npos ? "" : header.substr(value));
    }
    line = end + 2;
  }
  reply.body = raw.substr(head_end + 4);
  if (std::string length = reply.header("content-length"); !length.empty()) {
    reply.body.resize(std::min<std::size_t>(reply.body.size(), std::stoul(length)));
  }
  return reply;
}

nlohmann::json PrometheusServer::parse(const HttpReply& reply) {
  auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return {{"status", "error"},
            {"error", "HTTP " + std::to_string(reply.status) + ": " + reply.body}};
  }
  return parsed;
}

nlohmann::json PrometheusServer::query(const std::string& expr) {
  return parse(exchange("POST", "/api/v1/query", "query=" + formEncode(expr),
                        "application/x-www-form-urlencoded"));
}

nlohmann::json PrometheusServer::get(const std::string& target) {
  return parse(exchange("GET", target, "", ""));
}

}  // namespace sipwake::testing
