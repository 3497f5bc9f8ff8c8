// mcp/oauth.cpp: MCP authorization client flows (see oauth.h). All HTTP goes through
// cpp-httplib with redirects off: the authorization endpoint's redirect is the answer.
#include "mcp/oauth.h"

#include <httplib.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "mcp/types.h"

namespace m1::mcp {

namespace {

struct Url {
  std::string origin, path;  // path includes the query, "/" at least
};

Url split_url(const std::string& url) {
  auto s = url.find("://");
  auto p = url.find('/', s == std::string::npos ? 0 : s + 3);
  if (p == std::string::npos) return {url, "/"};
  return {url.substr(0, p), url.substr(p)};
}

struct HttpReply {
  int status = 0;
  std::string body, location;
};

HttpReply http_call(const std::string& method, const std::string& url, const std::string& body = "",
                    const std::string& content_type = "", const httplib::Headers& headers = {}) {
  Url u = split_url(url);
  httplib::Client cli(u.origin);
  cli.set_connection_timeout(10, 0);
  cli.set_read_timeout(30, 0);
  cli.set_follow_location(false);
  httplib::Result r = method == "GET" ? cli.Get(u.path, headers)
                                      : cli.Post(u.path, headers, body, content_type);
  HttpReply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.location = r->get_header_value("Location");
  return out;
}

json get_json(const std::string& url) {
  HttpReply r = http_call("GET", url, "", "", {{"Accept", "application/json"}, {"MCP-Protocol-Version", latest_protocol_version()}});
  if (r.status != 200) return nullptr;
  json j = json::parse(r.body, nullptr, false);
  return j.is_object() ? j : json();
}

std::string random_token(size_t n) {
  std::string b(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), static_cast<int>(n));
  return base64url(b);
}

std::string form_encode(const std::map<std::string, std::string>& form) {
  std::string out;
  for (auto& [k, v] : form) {
    if (!out.empty()) out += "&";
    out += httplib::detail::encode_query_param(k) + "=" + httplib::detail::encode_query_param(v);
  }
  return out;
}

std::string query_param(const std::string& url, const std::string& key) {
  auto q = url.find('?');
  if (q == std::string::npos) return "";
  httplib::Params params;
  httplib::detail::parse_query_text(url.substr(q + 1), params);
  auto it = params.find(key);
  return it == params.end() ? "" : it->second;
}

// JWS signature over `input` with a PEM private key: ES256 (raw r||s) or RS256.
Result<std::string> jws_sign(const std::string& pem, const std::string& alg, const std::string& input) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!key) return make_error("private_key_pem is not a readable PEM private key");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  bool ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  if (!ok) return make_error("signing the client assertion failed");
  if (alg == "ES256") {  // DER ECDSA-Sig-Value -> 64-byte r||s
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (!es) return make_error("unexpected ECDSA signature encoding");
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    std::string raw(64, '\0');
    BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    return raw;
  }
  return sig;
}

bool contains(const json& arr, const std::string& v) {
  if (!arr.is_array()) return false;
  for (auto& x : arr)
    if (x == v) return true;
  return false;
}

}  // namespace

std::string base64url(const std::string& bytes) {
  std::string s = base64_encode(bytes);
  for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::string sha256(const std::string& bytes) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  return std::string(reinterpret_cast<char*>(d), sizeof d);
}

std::map<std::string, std::string> parse_www_authenticate(const std::string& h) {
  std::map<std::string, std::string> out;
  size_t i = h.find(' ');  // skip the scheme ("Bearer")
  while (i != std::string::npos && i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    size_t eq = h.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = h.substr(i, eq - i);
    std::string val;
    size_t j = eq + 1;
    if (j < h.size() && h[j] == '"') {
      ++j;
      while (j < h.size() && h[j] != '"') {
        if (h[j] == '\\' && j + 1 < h.size()) ++j;
        val += h[j++];
      }
      ++j;
    } else {
      while (j < h.size() && h[j] != ',' && h[j] != ' ') val += h[j++];
    }
    out[key] = val;
    i = j;
  }
  return out;
}

std::string OAuthProvider::authorization_header() {
  std::lock_guard lk(mu_);
  return token_.empty() ? "" : "Bearer " + token_;
}

bool OAuthProvider::on_unauthorized(int status, const std::string& www_authenticate) {
  std::lock_guard lk(mu_);
  auto params = parse_www_authenticate(www_authenticate);
  if (status == 403 && params["error"] != "insufficient_scope") {
    last_error_ = "403 Forbidden (" + params["error"] + ")";
    return false;
  }
  if (++authorizations_ > opts_.max_authorizations) {
    last_error_ = "authorization retried " + std::to_string(opts_.max_authorizations) + " times; giving up";
    spdlog::error("oauth: {}", last_error_);
    return false;
  }
  Status st = authorize(params["scope"], params["resource_metadata"]);
  if (!st.ok()) {
    last_error_ = st.error().message;
    spdlog::error("oauth: {}", last_error_);
    return false;
  }
  return true;
}

Status OAuthProvider::authorize(const std::string& challenge_scope, const std::string& rm_url) {
  if (!discovered_) {
    M1_TRY(discover(rm_url));
    discovered_ = true;
  }
  std::string scope = challenge_scope;
  if (scope.empty() && prm_.contains("scopes_supported") && prm_["scopes_supported"].is_array())
    for (auto& s : prm_["scopes_supported"]) scope += (scope.empty() ? "" : " ") + s.get<std::string>();
  bool cc_only = contains(as_meta_.value("grant_types_supported", json()), "client_credentials") &&
                 !contains(as_meta_.value("grant_types_supported", json()), "authorization_code");
  if (!cc_only && contains(as_meta_.value("scopes_supported", json()), "offline_access") &&
      contains(as_meta_.value("grant_types_supported", json()), "refresh_token") &&
      scope.find("offline_access") == std::string::npos)
    scope += (scope.empty() ? "" : " ") + std::string("offline_access");
  M1_TRY(ensure_client());
  if (opts_.context.contains("idp_id_token")) {  // SEP-990 enterprise-managed authorization
    auto tok = cross_app_flow(scope);
    if (!tok.ok()) return tok.error();
    token_ = tok.value();
    return {};
  }
  auto tok = cc_only ? client_credentials_flow(scope) : authorization_code_flow(scope);
  if (!tok.ok()) return tok.error();
  token_ = tok.value();
  return {};
}

Status OAuthProvider::discover(const std::string& rm_url) {
  Url res = split_url(opts_.resource_url);
  std::vector<std::string> prm_urls;
  if (!rm_url.empty()) prm_urls.push_back(rm_url);
  std::string path = res.path.substr(0, res.path.find('?'));
  if (!path.empty() && path != "/") prm_urls.push_back(res.origin + "/.well-known/oauth-protected-resource" + path);
  prm_urls.push_back(res.origin + "/.well-known/oauth-protected-resource");
  for (auto& u : prm_urls) {
    json j = get_json(u);
    if (j.is_object() && j.contains("authorization_servers")) {
      prm_ = j;
      break;
    }
  }
  std::string issuer;
  if (prm_.is_object()) {
    std::string r = prm_.value("resource", "");
    if (!r.empty()) {
      // RFC 9728 s7.3: the metadata must be about the resource we are talking to.
      std::string want = opts_.resource_url;
      bool ok = want.rfind(r, 0) == 0 && (want.size() == r.size() || r.back() == '/' || want[r.size()] == '/' ||
                                         want[r.size()] == '?');
      if (!ok) return make_error("protected resource metadata names resource " + r + ", not " + want);
      resource_ = r;
    } else {
      resource_ = opts_.resource_url;
    }
    if (!prm_["authorization_servers"].is_array() || prm_["authorization_servers"].empty())
      return make_error("protected resource metadata lists no authorization_servers");
    issuer = prm_["authorization_servers"][0];
  } else {
    issuer = res.origin;  // 2025-03-26: the MCP server's origin is the authorization server
  }
  while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
  Url is = split_url(issuer);
  std::string ipath = is.path == "/" ? "" : is.path;
  std::vector<std::string> as_urls;
  if (!ipath.empty()) {
    as_urls = {is.origin + "/.well-known/oauth-authorization-server" + ipath,
               is.origin + "/.well-known/openid-configuration" + ipath,
               is.origin + ipath + "/.well-known/openid-configuration"};
  } else {
    as_urls = {is.origin + "/.well-known/oauth-authorization-server", is.origin + "/.well-known/openid-configuration"};
  }
  for (auto& u : as_urls) {
    json j = get_json(u);
    if (j.is_object() && j.contains("token_endpoint")) {
      as_meta_ = j;
      return {};
    }
  }
  if (prm_.is_object()) return make_error("no authorization server metadata found for " + issuer);
  // 2025-03-26 fallback: default endpoints at the server's origin.
  as_meta_ = {{"authorization_endpoint", is.origin + "/authorize"},
              {"token_endpoint", is.origin + "/token"},
              {"registration_endpoint", is.origin + "/register"}};
  return {};
}

Status OAuthProvider::ensure_client() {
  if (!client_id_.empty()) return {};
  json supported = as_meta_.value("token_endpoint_auth_methods_supported", json::array());
  auto pick_secret_method = [&] {
    if (contains(supported, "client_secret_basic") || !supported.is_array() || supported.empty())
      return std::string("client_secret_basic");
    if (contains(supported, "client_secret_post")) return std::string("client_secret_post");
    return std::string("client_secret_basic");
  };
  const json& ctx = opts_.context;
  if (ctx.contains("client_id") && ctx["client_id"].is_string()) {
    client_id_ = ctx["client_id"];
    client_secret_ = ctx.value("client_secret", "");
    if (ctx.contains("private_key_pem")) auth_method_ = "private_key_jwt";
    else auth_method_ = client_secret_.empty() ? "none" : pick_secret_method();
    return {};
  }
  if (as_meta_.value("client_id_metadata_document_supported", false) && !opts_.client_metadata_url.empty()) {
    client_id_ = opts_.client_metadata_url;
    auth_method_ = "none";
    return {};
  }
  std::string reg = as_meta_.value("registration_endpoint", "");
  if (reg.empty()) return make_error("the authorization server offers no dynamic client registration and no client id is configured");
  json body = {{"client_name", opts_.client_name},
               {"redirect_uris", {opts_.redirect_uri}},
               {"grant_types", {"authorization_code", "refresh_token"}},
               {"response_types", {"code"}}};
  HttpReply r = http_call("POST", reg, body.dump(), "application/json");
  json j = json::parse(r.body, nullptr, false);
  if (r.status / 100 != 2 || !j.is_object() || !j.contains("client_id"))
    return make_error("client registration at " + reg + " failed (HTTP " + std::to_string(r.status) + ")");
  client_id_ = j["client_id"];
  client_secret_ = j.value("client_secret", "");
  auth_method_ = j.value("token_endpoint_auth_method", client_secret_.empty() ? "none" : pick_secret_method());
  return {};
}

Result<std::string> OAuthProvider::authorization_code_flow(const std::string& scope) {
  std::string ep = as_meta_.value("authorization_endpoint", "");
  if (ep.empty()) return make_error("authorization server metadata has no authorization_endpoint");
  std::string verifier = random_token(32), state = random_token(16);
  std::map<std::string, std::string> q = {{"response_type", "code"},
                                          {"client_id", client_id_},
                                          {"redirect_uri", opts_.redirect_uri},
                                          {"code_challenge", base64url(sha256(verifier))},
                                          {"code_challenge_method", "S256"},
                                          {"state", state}};
  if (!scope.empty()) q["scope"] = scope;
  if (!resource_.empty()) q["resource"] = resource_;
  std::string url = ep + (ep.find('?') == std::string::npos ? "?" : "&") + form_encode(q);
  HttpReply r = http_call("GET", url);
  if (r.status / 100 != 3 || r.location.empty())
    return make_error("authorization request did not redirect (HTTP " + std::to_string(r.status) + ")");
  std::string code = query_param(r.location, "code");
  if (code.empty()) return make_error("authorization redirect carried no code: " + query_param(r.location, "error"));
  if (query_param(r.location, "state") != state) return make_error("authorization redirect state mismatch");
  std::map<std::string, std::string> form = {{"grant_type", "authorization_code"},
                                             {"code", code},
                                             {"redirect_uri", opts_.redirect_uri},
                                             {"code_verifier", verifier}};
  if (!resource_.empty()) form["resource"] = resource_;
  M1_ASSIGN_OR_RETURN(json tok, token_request(form));
  return tok["access_token"].get<std::string>();
}

Result<std::string> OAuthProvider::client_credentials_flow(const std::string& scope) {
  std::map<std::string, std::string> form = {{"grant_type", "client_credentials"}};
  if (!scope.empty()) form["scope"] = scope;
  if (!resource_.empty()) form["resource"] = resource_;
  M1_ASSIGN_OR_RETURN(json tok, token_request(form));
  return tok["access_token"].get<std::string>();
}

// SEP-990: exchange the IdP's ID token for an ID-JAG at the IdP (RFC 8693), then present it
// to the authorization server as a JWT bearer grant (RFC 7523).
Result<std::string> OAuthProvider::cross_app_flow(const std::string& scope) {
  const json& c = opts_.context;
  std::string idp_ep = c.value("idp_token_endpoint", "");
  if (idp_ep.empty()) return make_error("context has idp_id_token but no idp_token_endpoint");
  std::map<std::string, std::string> ex = {
      {"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
      {"subject_token", c.value("idp_id_token", "")},
      {"subject_token_type", "urn:ietf:params:oauth:token-type:id_token"},
      {"requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"},
      {"audience", as_meta_.value("issuer", "")},
      {"resource", resource_.empty() ? opts_.resource_url : resource_}};
  if (c.contains("idp_client_id")) ex["client_id"] = c.value("idp_client_id", "");
  if (!scope.empty()) ex["scope"] = scope;
  HttpReply r = http_call("POST", idp_ep, form_encode(ex), "application/x-www-form-urlencoded",
                          {{"Accept", "application/json"}});
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || !j.contains("access_token"))
    return make_error("token exchange at " + idp_ep + " failed (HTTP " + std::to_string(r.status) + ")");
  std::map<std::string, std::string> form = {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                                             {"assertion", j["access_token"].get<std::string>()}};
  if (!scope.empty()) form["scope"] = scope;
  M1_ASSIGN_OR_RETURN(json tok, token_request(form));
  return tok["access_token"].get<std::string>();
}

Result<json> OAuthProvider::token_request(std::map<std::string, std::string> form) {
  std::string ep = as_meta_.value("token_endpoint", "");
  if (ep.empty()) return make_error("authorization server metadata has no token_endpoint");
  httplib::Headers h = {{"Accept", "application/json"}};
  if (auth_method_ == "client_secret_basic") {
    std::string cred = httplib::detail::encode_query_param(client_id_) + ":" +
                       httplib::detail::encode_query_param(client_secret_);
    h.emplace("Authorization", "Basic " + base64_encode(cred));
  } else if (auth_method_ == "client_secret_post") {
    form["client_id"] = client_id_;
    form["client_secret"] = client_secret_;
  } else if (auth_method_ == "private_key_jwt") {
    std::string alg = opts_.context.value("signing_algorithm", "ES256");
    long now = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count());
    json header = {{"alg", alg}, {"typ", "JWT"}};
    // Audience: the authorization server's issuer identifier (RFC 7523 s3).
    std::string aud = as_meta_.value("issuer", split_url(ep).origin);
    json claims = {{"iss", client_id_}, {"sub", client_id_}, {"aud", aud},
                   {"iat", now},        {"exp", now + 300},  {"jti", random_token(16)}};
    std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
    M1_ASSIGN_OR_RETURN(std::string sig, jws_sign(opts_.context.value("private_key_pem", ""), alg, input));
    form["client_id"] = client_id_;
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    form["client_assertion"] = input + "." + base64url(sig);
  } else {
    form["client_id"] = client_id_;
  }
  HttpReply r = http_call("POST", ep, form_encode(form), "application/x-www-form-urlencoded", h);
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
    return make_error("token request to " + ep + " failed (HTTP " + std::to_string(r.status) + "): " +
                      (j.is_object() ? j.value("error", "") : r.body.substr(0, 200)));
  return j;
}

}  // namespace m1::mcp
