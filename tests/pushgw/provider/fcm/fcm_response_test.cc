#include "pushgw/provider/fcm/fcm_response.h"

#include <catch2/catch.hpp>

using namespace sipwake;
using namespace sipwake::pushgw;

namespace {

http2::Response answer(int status, std::string body,
                       std::vector<std::pair<std::string, std::string>> headers = {}) {
  http2::Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.headers.emplace_back("content-type", "application/json; charset=UTF-8");
  return r;
}

// google.rpc.Status bodies as FCM HTTP v1 sends them (shapes from Firebase's
// "FCM error codes" page and answers quoted in client library issues).
const char* kUnregistered = R"({
  "error": {
    "code": 404,
    "message": "Requested entity was not found.",
    "status": "NOT_FOUND",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}
    ]
  }
})";

const char* kNotFoundNoDetail = R"({
  "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
})";

const char* kInvalidRegistrationToken = R"({
  "error": {
    "code": 400,
    "message": "The registration token is not a valid FCM registration token",
    "status": "INVALID_ARGUMENT",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}
    ]
  }
})";

const char* kTokenFieldViolation = R"({
  "error": {
    "code": 400,
    "message": "Invalid value at 'message.token' (TYPE_STRING), 42",
    "status": "INVALID_ARGUMENT",
    "details": [
      {"@type": "type.googleapis.com/google.rpc.BadRequest",
       "fieldViolations": [{"field": "message.token",
                            "description": "Invalid value at 'message.token' (TYPE_STRING), 42"}]}
    ]
  }
})";

const char* kDataFieldViolation = R"({
  "error": {
    "code": 400,
    "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
    "status": "INVALID_ARGUMENT",
    "details": [
      {"@type": "type.googleapis.com/google.rpc.BadRequest",
       "fieldViolations": [{"field": "message.data[0].value",
                            "description": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12"}]}
    ]
  }
})";

const char* kInvalidTtl = R"({
  "error": {
    "code": 400,
    "message": "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), \"forever\"",
    "status": "INVALID_ARGUMENT",
    "details": [
      {"@type": "type.googleapis.com/google.rpc.BadRequest",
       "fieldViolations": [{"field": "message.android.ttl",
                            "description": "Invalid value at 'message.android.ttl'"}]}
    ]
  }
})";

const char* kReservedDataKey = R"({
  "error": {
    "code": 400,
    "message": "Invalid data payload key: from",
    "status": "INVALID_ARGUMENT",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}
    ]
  }
})";

const char* kBareInvalidArgument = R"({
  "error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}
})";

const char* kUnauthenticated = R"({
  "error": {
    "code": 401,
    "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    "status": "UNAUTHENTICATED"
  }
})";

const char* kThirdPartyAuth = R"({
  "error": {
    "code": 401,
    "message": "Auth error from APNS or Web Push Service",
    "status": "UNAUTHENTICATED",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "THIRD_PARTY_AUTH_ERROR"}
    ]
  }
})";

const char* kSenderIdMismatch = R"({
  "error": {
    "code": 403,
    "message": "SenderId mismatch",
    "status": "PERMISSION_DENIED",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SENDER_ID_MISMATCH"}
    ]
  }
})";

const char* kPermissionDenied = R"({
  "error": {
    "code": 403,
    "message": "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/example-project' (or it may not exist).",
    "status": "PERMISSION_DENIED",
    "details": [
      {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
       "domain": "cloudresourcemanager.googleapis.com",
       "metadata": {"permission": "cloudmessaging.messages.create"}}
    ]
  }
})";

const char* kQuotaExceeded = R"({
  "error": {
    "code": 429,
    "message": "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}
    ]
  }
})";

const char* kUnavailable = R"({
  "error": {
    "code": 503,
    "message": "The service is currently unavailable.",
    "status": "UNAVAILABLE",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNAVAILABLE"}
    ]
  }
})";

const char* kInternal = R"({
  "error": {
    "code": 500,
    "message": "Internal error encountered.",
    "status": "INTERNAL",
    "details": [
      {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INTERNAL"}
    ]
  }
})";

struct Row {
  int status;
  std::string body;
  PushOutcome outcome;
  std::string reason;
};

}  // namespace

TEST_CASE("FCM answers are classified once, at the edge", "[fcm]") {
  std::vector<Row> rows = {
      {200, R"({"name": "projects/example-project/messages/0:1700000000000000%31bd1c9631bd1c96"})",
       PushOutcome::Delivered, "ok"},
      {404, kUnregistered, PushOutcome::InvalidToken, "UNREGISTERED"},
      {404, kNotFoundNoDetail, PushOutcome::PermanentError, "NOT_FOUND"},  // e.g. a wrong project
      {400, kInvalidRegistrationToken, PushOutcome::InvalidToken, "INVALID_ARGUMENT"},
      {400, kTokenFieldViolation, PushOutcome::InvalidToken, "INVALID_ARGUMENT"},
      {400, kDataFieldViolation, PushOutcome::PermanentError, "INVALID_ARGUMENT"},
      {400, kInvalidTtl, PushOutcome::PermanentError, "INVALID_ARGUMENT"},
      {400, kReservedDataKey, PushOutcome::PermanentError, "INVALID_ARGUMENT"},
      {400, kBareInvalidArgument, PushOutcome::PermanentError, "INVALID_ARGUMENT"},
      {401, kUnauthenticated, PushOutcome::RefreshCredentials, "UNAUTHENTICATED"},
      {401, kThirdPartyAuth, PushOutcome::PermanentError, "THIRD_PARTY_AUTH_ERROR"},
      {403, kSenderIdMismatch, PushOutcome::InvalidToken, "SENDER_ID_MISMATCH"},
      {403, kPermissionDenied, PushOutcome::PermanentError, "PERMISSION_DENIED"},
      {429, kQuotaExceeded, PushOutcome::RetryLater, "QUOTA_EXCEEDED"},
      {500, kInternal, PushOutcome::RetryLater, "INTERNAL"},
      {503, kUnavailable, PushOutcome::RetryLater, "UNAVAILABLE"},
      {502, "<!DOCTYPE html><title>Error 502 (Server Error)!!1</title>", PushOutcome::RetryLater,
       "http_502"},
      {401, "", PushOutcome::RefreshCredentials, "http_401"},
      {400, "", PushOutcome::PermanentError, "http_400"},
      {413, "", PushOutcome::PermanentError, "http_413"},
  };
  for (const auto& row : rows) {
    INFO(row.status << " " << row.body);
    auto c = classifyFcmResponse(answer(row.status, row.body));
    CHECK(c.outcome == row.outcome);
    CHECK(c.reason == row.reason);
    CHECK_FALSE(c.retry_after);
  }
}

TEST_CASE("FCM UNREGISTERED counts wherever Google puts it", "[fcm]") {
  // The brief's variant: the status itself says UNREGISTERED.
  auto c = classifyFcmResponse(answer(404, R"({"error":{"code":404,"status":"UNREGISTERED"}})"));
  CHECK(c.outcome == PushOutcome::InvalidToken);
  c = classifyFcmResponse(answer(400, R"({"error":{"code":400,"status":"INVALID_ARGUMENT",
      "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}})"));
  CHECK(c.outcome == PushOutcome::InvalidToken);
  // A detail of another type naming UNREGISTERED is not FCM's word.
  c = classifyFcmResponse(answer(404, R"({"error":{"code":404,"status":"NOT_FOUND",
      "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","errorCode":"UNREGISTERED"}]}})"));
  CHECK(c.outcome == PushOutcome::PermanentError);
}

TEST_CASE("FCM 429 and 5xx carry Retry-After when given, no response is retried", "[fcm]") {
  auto c = classifyFcmResponse(answer(429, kQuotaExceeded, {{"retry-after", "60"}}));
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK(c.retry_after == 60 * kSecond);
  c = classifyFcmResponse(answer(503, kUnavailable, {{"retry-after", "5"}}));
  CHECK(c.retry_after == 5 * kSecond);
  c = classifyFcmResponse(answer(500, kInternal, {{"retry-after", "soon"}}));
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK_FALSE(c.retry_after);

  http2::Response none;
  none.error = "timeout";
  c = classifyFcmResponse(none);
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK(c.reason == "no_response");
  none.retry_safe = true;
  CHECK(classifyFcmResponse(none).reason == "not_processed");
}

TEST_CASE("FCM error bodies of odd shapes do not confuse the classifier", "[fcm]") {
  for (std::string body : {"null", "[]", R"({"error":"x"})", R"({"error":{"details":"x"}})",
                           R"({"error":{"details":[1,"x",{"@type":5}]}})",
                           R"({"error":{"status":7,"message":["registration token"]}})"}) {
    INFO(body);
    auto c = classifyFcmResponse(answer(400, body));
    CHECK(c.outcome == PushOutcome::PermanentError);
    CHECK(c.reason == "http_400");
  }
}
