// agent/providers.cpp: picks a provider by its short name (local | openai | scripted).
#include "agent/provider.h"

namespace m1::agent {

Result<std::unique_ptr<Provider>> make_provider(const ProviderOptions& o) {
  if (o.kind == "scripted") return make_scripted_provider(o.script);
  if (o.kind == "openai") return make_openai_provider(o);
  if (o.kind == "local") return make_local_provider(o);
  return make_error("unknown provider '" + o.kind + "'; expected local, openai or scripted", 2);
}

}  // namespace m1::agent

#ifndef M1_HAVE_LOCAL_PROVIDER
namespace m1::agent {
// This build has no engine session API (engine/session.h) to drive, so the local provider cannot
// exist here; say so plainly instead of pretending.
Result<std::unique_ptr<Provider>> make_local_provider(const ProviderOptions&) {
  return make_error("the local provider needs the embedded engine's session API, which this build "
                    "does not have yet; use --provider openai (with --base-url) or --provider scripted "
                    "(with --script FILE)", 1);
}
}  // namespace m1::agent
#endif
