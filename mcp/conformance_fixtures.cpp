// mcp/conformance_fixtures.cpp: the conformance suite's fixture set (see the header). Texts
// and shapes follow each scenario's description (`conformance list`, scenario sources);
// behaviour that talks back (logging, progress, sampling, elicitation, SSE polling) goes
// through the real session machinery, so these also exercise it end to end.
#include "mcp/conformance_fixtures.h"

#include <chrono>
#include <thread>

namespace m1::mcp {

namespace {

// 1x1 red PNG and an 8-sample 8 kHz mono WAV.
const char* kPng = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
const char* kWav = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

json no_args() { return {{"type", "object"}, {"properties", json::object()}}; }

json text_result(const std::string& t) { return {{"content", {text_content(t)}}}; }

tools::ToolSpec spec(const std::string& name, const std::string& desc, json schema = no_args()) {
  tools::ToolSpec s;
  s.name = name;
  s.description = desc;
  s.input_schema = std::move(schema);
  return s;
}

std::string string_arg(const json& args, const char* key) {
  if (!args.contains(key) || !args[key].is_string())
    throw RpcError{err::kInvalidParams, std::string("Invalid arguments: \"") + key + "\" (string) is required", nullptr};
  return args[key];
}

// Sends elicitation/create and renders the answer as the scenarios expect.
json elicit(ToolCall& call, const json& params, const std::string& prefix) {
  if (!call.conn.client_has("elicitation"))
    return {{"content", {text_content("Client does not support elicitation")}}, {"isError", true}};
  Reply r = call.rpc.request("elicitation/create", params);
  if (!r.ok()) return {{"content", {text_content("Elicitation failed: " + r.error->describe())}}, {"isError", true}};
  std::string action = r.result.value("action", "");
  json content = r.result.value("content", json::object());
  if (prefix == "User response")
    return text_result("User response: action=" + action + ", content=" + content.dump());
  return text_result(prefix + ": action=" + action + ", content=" + content.dump());
}

void add_tools(Server& s) {
  s.add_native_tool({spec("test_simple_text", "Returns a simple text response"),
                     [](const json&, ToolCall&) { return text_result("This is a simple text response for testing."); }});
  s.add_native_tool({spec("test_image_content", "Returns a 1x1 PNG image"), [](const json&, ToolCall&) {
                       return json{{"content", {{{"type", "image"}, {"data", kPng}, {"mimeType", "image/png"}}}}};
                     }});
  s.add_native_tool({spec("test_audio_content", "Returns a short WAV clip"), [](const json&, ToolCall&) {
                       return json{{"content", {{{"type", "audio"}, {"data", kWav}, {"mimeType", "audio/wav"}}}}};
                     }});
  s.add_native_tool({spec("test_embedded_resource", "Returns an embedded text resource"), [](const json&, ToolCall&) {
                       return json{{"content",
                                    {{{"type", "resource"},
                                      {"resource",
                                       {{"uri", "test://embedded-resource"},
                                        {"mimeType", "text/plain"},
                                        {"text", "This is an embedded resource content."}}}}}}};
                     }});
  s.add_native_tool({spec("test_multiple_content_types", "Returns text, image and resource content"),
                     [](const json&, ToolCall&) {
                       return json{{"content",
                                    {text_content("Multiple content types test:"),
                                     {{"type", "image"}, {"data", kPng}, {"mimeType", "image/png"}},
                                     {{"type", "resource"},
                                      {"resource",
                                       {{"uri", "test://mixed-content-resource"},
                                        {"mimeType", "application/json"},
                                        {"text", "{\"test\":\"data\",\"value\":123}"}}}}}}};
                     }});
  s.add_native_tool({spec("test_tool_with_logging", "Sends three info log messages while running"),
                     [](const json&, ToolCall& c) {
                       c.conn.log("info", "Tool execution started", c.rpc.id);
                       sleep_ms(50);
                       c.conn.log("info", "Tool processing data", c.rpc.id);
                       sleep_ms(50);
                       c.conn.log("info", "Tool execution completed", c.rpc.id);
                       return text_result("Tool with logging executed successfully");
                     }});
  s.add_native_tool({spec("test_tool_with_progress", "Reports progress 0, 50, 100 of 100"),
                     [](const json&, ToolCall& c) {
                       c.rpc.progress(0, 100, "Starting");
                       sleep_ms(50);
                       c.rpc.progress(50, 100, "Halfway");
                       sleep_ms(50);
                       c.rpc.progress(100, 100, "Done");
                       return text_result("Tool with progress executed successfully");
                     }});
  s.add_native_tool({spec("test_error_handling", "Always fails with a tool error"), [](const json&, ToolCall&) {
                       return json{{"content", {text_content("This tool intentionally returns an error for testing")}},
                                   {"isError", true}};
                     }});
  s.add_native_tool(
      {spec("test_sampling", "Asks the client's LLM via sampling/createMessage",
            {{"type", "object"},
             {"properties", {{"prompt", {{"type", "string"}, {"description", "The prompt to send to the LLM"}}}}},
             {"required", {"prompt"}}}),
       [](const json& args, ToolCall& c) {
         std::string prompt = string_arg(args, "prompt");
         if (!c.conn.client_has("sampling"))
           return json{{"content", {text_content("Client does not support sampling")}}, {"isError", true}};
         Reply r = c.rpc.request(
             "sampling/createMessage",
             {{"messages", {{{"role", "user"}, {"content", text_content(prompt)}}}}, {"maxTokens", 100}});
         if (!r.ok())
           return json{{"content", {text_content("Sampling failed: " + r.error->describe())}}, {"isError", true}};
         std::string text;
         const json& content = r.result.value("content", json::object());
         if (content.is_object()) text = content.value("text", "");
         else if (content.is_array() && !content.empty()) text = content[0].value("text", "");
         return text_result("LLM response: " + text);
       }});
  s.add_native_tool(
      {spec("test_elicitation", "Asks the user for a username and email",
            {{"type", "object"},
             {"properties", {{"message", {{"type", "string"}, {"description", "The message to show the user"}}}}},
             {"required", {"message"}}}),
       [](const json& args, ToolCall& c) {
         std::string message = string_arg(args, "message");
         json schema = {{"type", "object"},
                        {"properties",
                         {{"username", {{"type", "string"}, {"description", "User's response"}}},
                          {"email", {{"type", "string"}, {"description", "User's email address"}}}}},
                        {"required", {"username", "email"}}};
         return elicit(c, {{"message", message}, {"requestedSchema", schema}}, "User response");
       }});
  s.add_native_tool(
      {spec("test_elicitation_sep1034_defaults", "Elicitation with defaults for every primitive type"),
       [](const json&, ToolCall& c) {
         json schema = {
             {"type", "object"},
             {"properties",
              {{"name", {{"type", "string"}, {"description", "User name"}, {"default", "John Doe"}}},
               {"age", {{"type", "integer"}, {"description", "User age"}, {"default", 30}}},
               {"score", {{"type", "number"}, {"description", "User score"}, {"default", 95.5}}},
               {"status",
                {{"type", "string"},
                 {"description", "User status"},
                 {"enum", {"active", "inactive", "pending"}},
                 {"default", "active"}}},
               {"verified", {{"type", "boolean"}, {"description", "Verification status"}, {"default", true}}}}},
             {"required", json::array()}};
         return elicit(c, {{"message", "Please review and update the form fields with defaults"}, {"requestedSchema", schema}},
                       "Elicitation completed");
       }});
  s.add_native_tool(
      {spec("test_elicitation_sep1330_enums", "Elicitation with all five enum schema variants"),
       [](const json&, ToolCall& c) {
         json schema = {
             {"type", "object"},
             {"properties",
              {{"untitledSingle",
                {{"type", "string"}, {"description", "Untitled single-select"}, {"enum", {"option1", "option2", "option3"}}}},
               {"titledSingle",
                {{"type", "string"},
                 {"description", "Titled single-select"},
                 {"oneOf",
                  {{{"const", "value1"}, {"title", "First Option"}},
                   {{"const", "value2"}, {"title", "Second Option"}},
                   {{"const", "value3"}, {"title", "Third Option"}}}}}},
               {"legacyEnum",
                {{"type", "string"},
                 {"description", "Legacy titled enum"},
                 {"enum", {"opt1", "opt2", "opt3"}},
                 {"enumNames", {"Option One", "Option Two", "Option Three"}}}},
               {"untitledMulti",
                {{"type", "array"},
                 {"description", "Untitled multi-select"},
                 {"items", {{"type", "string"}, {"enum", {"option1", "option2", "option3"}}}}}},
               {"titledMulti",
                {{"type", "array"},
                 {"description", "Titled multi-select"},
                 {"items",
                  {{"anyOf",
                    {{{"const", "value1"}, {"title", "First Choice"}},
                     {{"const", "value2"}, {"title", "Second Choice"}},
                     {{"const", "value3"}, {"title", "Third Choice"}}}}}}}}}},
             {"required", json::array()}};
         return elicit(c, {{"message", "Please select options from the enum fields"}, {"requestedSchema", schema}},
                       "Elicitation completed");
       }});
  s.add_native_tool(
      {spec("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
            {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
             {"type", "object"},
             {"$defs",
              {{"address",
                {{"type", "object"},
                 {"properties", {{"street", {{"type", "string"}}}, {"city", {{"type", "string"}}}}}}}}},
             {"properties", {{"name", {{"type", "string"}}}, {"address", {{"$ref", "#/$defs/address"}}}}},
             {"additionalProperties", false}}),
       [](const json& args, ToolCall&) { return text_result("Received: " + args.dump()); }});
  s.add_native_tool({spec("test_reconnection", "Closes its SSE stream mid-call; the client polls back for the result"),
                     [](const json&, ToolCall& c) {
                       sleep_ms(50);
                       c.rpc.close_stream();
                       sleep_ms(100);
                       return text_result("Reconnection test completed successfully");
                     }});
}

class FixtureResources : public ResourceProvider {
 public:
  std::vector<json> resources() override {
    return {{{"uri", "test://static-text"}, {"name", "Static Text Resource"},
             {"description", "A static text resource for testing"}, {"mimeType", "text/plain"}},
            {{"uri", "test://static-binary"}, {"name", "Static Binary Resource"},
             {"description", "A static binary resource (PNG) for testing"}, {"mimeType", "image/png"}},
            {{"uri", "test://watched-resource"}, {"name", "Watched Resource"},
             {"description", "A resource that can be subscribed to"}, {"mimeType", "text/plain"}}};
  }
  std::vector<json> templates() override {
    return {{{"uriTemplate", "test://template/{id}/data"}, {"name", "Template Resource"},
             {"description", "A resource template with an id parameter"}, {"mimeType", "application/json"}}};
  }
  std::optional<json> read(const std::string& uri) override {
    if (uri == "test://static-text")
      return contents(uri, "text/plain", "This is the content of the static text resource.");
    if (uri == "test://watched-resource") return contents(uri, "text/plain", "Watched resource content.");
    if (uri == "test://static-binary")
      return json{{"contents", {{{"uri", uri}, {"mimeType", "image/png"}, {"blob", kPng}}}}};
    const std::string pre = "test://template/", post = "/data";
    if (uri.rfind(pre, 0) == 0 && uri.size() > pre.size() + post.size() &&
        uri.compare(uri.size() - post.size(), post.size(), post) == 0) {
      std::string id = uri.substr(pre.size(), uri.size() - pre.size() - post.size());
      if (id.find('/') != std::string::npos) return std::nullopt;
      json data = {{"id", id}, {"templateTest", true}, {"data", "Data for ID: " + id}};
      return contents(uri, "application/json", data.dump());
    }
    return std::nullopt;
  }

 private:
  static json contents(const std::string& uri, const std::string& mime, const std::string& text) {
    return {{"contents", {{{"uri", uri}, {"mimeType", mime}, {"text", text}}}}};
  }
};

class FixturePrompts : public PromptProvider {
 public:
  std::vector<json> prompts() override {
    return {{{"name", "test_simple_prompt"}, {"description", "A simple prompt without arguments"}},
            {{"name", "test_prompt_with_arguments"},
             {"description", "A prompt with two required arguments"},
             {"arguments",
              {{{"name", "arg1"}, {"description", "First test argument"}, {"required", true}},
               {{"name", "arg2"}, {"description", "Second test argument"}, {"required", true}}}}},
            {{"name", "test_prompt_with_embedded_resource"},
             {"description", "A prompt that embeds a resource"},
             {"arguments", {{{"name", "resourceUri"}, {"description", "URI of the resource to embed"}, {"required", true}}}}},
            {{"name", "test_prompt_with_image"}, {"description", "A prompt with image content"}}};
  }
  std::optional<json> get(const std::string& name, const json& args) override {
    auto user = [](json content) { return json{{"role", "user"}, {"content", std::move(content)}}; };
    if (name == "test_simple_prompt")
      return json{{"messages", {user(text_content("This is a simple prompt for testing."))}}};
    if (name == "test_prompt_with_arguments") {
      std::string a1 = string_arg(args, "arg1"), a2 = string_arg(args, "arg2");
      return json{{"messages", {user(text_content("Prompt with arguments: arg1='" + a1 + "', arg2='" + a2 + "'"))}}};
    }
    if (name == "test_prompt_with_embedded_resource") {
      std::string uri = string_arg(args, "resourceUri");
      return json{{"messages",
                   {user({{"type", "resource"},
                          {"resource",
                           {{"uri", uri}, {"mimeType", "text/plain"}, {"text", "Embedded resource content for testing."}}}}),
                    user(text_content("Please process the embedded resource above."))}}};
    }
    if (name == "test_prompt_with_image")
      return json{{"messages",
                   {user({{"type", "image"}, {"data", kPng}, {"mimeType", "image/png"}}),
                    user(text_content("Please analyze the image above."))}}};
    return std::nullopt;
  }
  std::optional<json> complete(const json& ref, const json& arg) override {
    if (ref.value("name", "") != "test_prompt_with_arguments") return std::nullopt;
    std::string prefix = arg.value("value", "");
    json out = json::array();
    for (const char* v : {"paris", "park", "party", "test", "testing"})
      if (std::string(v).rfind(prefix, 0) == 0) out.push_back(v);
    return out;
  }
};

}  // namespace

void add_conformance_fixtures(Server& server) {
  add_tools(server);
  server.add_resource_provider(std::make_shared<FixtureResources>());
  server.add_prompt_provider(std::make_shared<FixturePrompts>());
}

}  // namespace m1::mcp
