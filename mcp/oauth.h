// mcp/oauth.h: the client side of MCP authorization (2025-11-25, with 2025-03-26 fallbacks),
// as an AuthProvider for HttpClientTransport. On a 401/403 challenge it discovers the
// protected-resource metadata (RFC 9728: WWW-Authenticate resource_metadata, else the
// path-based then root well-known URL), the authorization server metadata (RFC 8414 / OIDC
// discovery, path-aware), obtains a client id (pre-registered, Client ID Metadata Document URL,
// or dynamic registration RFC 7591), and gets a token: authorization code + PKCE S256 with a
// headless redirect (the authorization endpoint's Location is read, not opened in a browser),
// or client_credentials (client_secret_basic/post or private_key_jwt ES256/RS256) when the
// server only offers that grant, or the SEP-990 cross-app flow (IdP token exchange + JWT
// bearer grant) when given an IdP ID token. Scope: the challenge's, else PRM scopes_supported, else none.
#pragma once
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "mcp/http_client.h"

namespace m1::mcp {

struct OAuthOptions {
  std::string resource_url;            // the MCP endpoint URL
  std::string redirect_uri = "http://localhost:3000/callback";
  std::string client_name = "m1";
  std::string client_metadata_url;     // CIMD client id, used when the AS supports it
  // Pre-registered credentials and keys: {"client_id", "client_secret", "private_key_pem",
  // "signing_algorithm"} (the conformance suite passes these as MCP_CONFORMANCE_CONTEXT).
  nlohmann::json context = nlohmann::json::object();
  int max_authorizations = 3;          // bound on challenge -> authorize loops
};

class OAuthProvider : public AuthProvider {
 public:
  explicit OAuthProvider(OAuthOptions opts) : opts_(std::move(opts)) {}
  std::string authorization_header() override;
  bool on_unauthorized(int status, const std::string& www_authenticate) override;
  const std::string& last_error() const { return last_error_; }

 private:
  Status authorize(const std::string& challenge_scope, const std::string& resource_metadata_url);
  Status discover(const std::string& resource_metadata_url);
  Status ensure_client();
  Result<std::string> authorization_code_flow(const std::string& scope);
  Result<std::string> client_credentials_flow(const std::string& scope);
  Result<std::string> cross_app_flow(const std::string& scope);
  Result<nlohmann::json> token_request(std::map<std::string, std::string> form);

  OAuthOptions opts_;
  std::mutex mu_;
  std::string token_;
  std::string last_error_;
  int authorizations_ = 0;
  bool discovered_ = false;
  nlohmann::json prm_;       // protected resource metadata (may be empty for 2025-03-26)
  nlohmann::json as_meta_;   // authorization server metadata (or fallback endpoints)
  std::string resource_;     // RFC 8707 resource parameter
  std::string client_id_, client_secret_, auth_method_;
};

// Helpers exposed for tests.
std::map<std::string, std::string> parse_www_authenticate(const std::string& header);
std::string base64url(const std::string& bytes);
std::string sha256(const std::string& bytes);

}  // namespace m1::mcp
