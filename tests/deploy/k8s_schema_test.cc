// Every object that `kubectl kustomize` renders for the dev and prod overlays validates against
// the Kubernetes OpenAPI schemas (deploy/validate: npm packages kubernetes-models and
// @kubernetes-models/prometheus-operator, installed offline by scripts/setup.sh), and the
// validator really rejects broken objects.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_support.h"

namespace {

namespace fs = std::filesystem;
using ctx::testing::HaveTool;
using ctx::testing::RunCommand;
using ctx::testing::ShellQuote;
using nlohmann::json;

const std::string kRoot = CTX_SOURCE_DIR;
const std::string kValidator = kRoot + "/deploy/validate/validate.mjs";

// The validator can run: node is there and scripts/setup.sh installed its packages. Without
// node the test is skipped; with node but without the packages it fails (CI runs setup.sh).
bool ValidatorReady() {
  if (!HaveTool("node")) {
    WARN("node not found (scripts/setup.sh installs nodejs + npm): skipped");
    return false;
  }
  INFO("deploy/validate/node_modules missing: run scripts/setup.sh (npm ci in deploy/validate)");
  REQUIRE(fs::exists(kRoot + "/deploy/validate/node_modules/kubernetes-models/package.json"));
  REQUIRE(fs::exists(
      kRoot + "/deploy/validate/node_modules/@kubernetes-models/prometheus-operator/package.json"));
  return true;
}

std::string OutDir() {
  const std::string dir = std::string(CTX_BINARY_DIR) + "/tests/deploy";
  fs::create_directories(dir);
  return dir;
}

// Rendered overlay as JSON objects (kubectl kustomize | yq -c .).
std::vector<json> Render(const std::string& overlay) {
  const std::string cmd =
      "kubectl kustomize " + ShellQuote(kRoot + "/deploy/k8s/overlays/" + overlay) + " | yq -c .";
  const auto r = RunCommand("bash -o pipefail -c " + ShellQuote(cmd));
  INFO(cmd << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
  std::vector<json> docs;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#' || line == "null") continue;  // kubectl's warnings
    docs.push_back(json::parse(line));
  }
  return docs;
}

// What the validator said about one input file.
struct Validation {
  int valid = -1;  // from its summary line "<file>: V/N objects valid (...)"
  int total = -1;
  std::string invalid_lines;  // its "INVALID ..." lines
};

// Writes `docs` as a YAML stream (JSON documents separated by ---) to <out>/<name>.yaml.
std::string WriteStream(const std::vector<json>& docs, const std::string& name) {
  const std::string path = OutDir() + "/" + name + ".yaml";
  std::ofstream out(path);
  for (const auto& d : docs) out << "---\n" << d.dump(2) << "\n";
  return path;
}

// Runs the validator once over `paths` (node starts once: the schemas load once).
ctx::testing::CommandResult RunValidator(const std::vector<std::string>& paths) {
  std::string cmd = "node " + ShellQuote(kValidator);
  for (const auto& p : paths) cmd += " " + ShellQuote(p);
  return RunCommand(cmd);
}

Validation ValidationOf(const std::string& output, const std::string& path) {
  Validation v;
  std::istringstream lines(output);
  const std::string summary = path + ": ";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("INVALID ", 0) == 0 && line.find(" " + path + "#") != std::string::npos) {
      // the object's place reads "(apiVersion, <path>#<document>)"
      v.invalid_lines += line + "\n";
    } else if (line.rfind(summary, 0) == 0) {
      static const std::regex kCounts(R"(^(\d+)/(\d+) objects valid)");
      std::smatch m;
      const std::string rest = line.substr(summary.size());
      if (std::regex_search(rest, m, kCounts)) {
        v.valid = std::stoi(m[1].str());
        v.total = std::stoi(m[2].str());
      }
    }
  }
  return v;
}

json& Find(std::vector<json>& docs, const std::string& kind, const std::string& name) {
  for (auto& d : docs) {
    if (d["kind"] == kind && d["metadata"]["name"] == name) return d;
  }
  FAIL("no " << kind << "/" << name << " in the rendered overlay");
  throw std::logic_error("unreachable");
}

bool Tools() {
  if (!HaveTool("kubectl") || !HaveTool("yq")) {
    WARN("kubectl or yq not found (scripts/setup.sh installs them): skipped");
    return false;
  }
  return ValidatorReady();
}

}  // namespace

TEST_CASE("every rendered object of both overlays validates against the Kubernetes OpenAPI schema",
          "[deploy][k8s][schema]") {
  if (!Tools()) return;
  std::vector<std::string> paths;
  std::vector<size_t> sizes;
  for (const std::string overlay : {"dev", "prod"}) {
    const auto docs = Render(overlay);
    REQUIRE(docs.size() >= 26);
    paths.push_back(WriteStream(docs, "schema-" + overlay));
    sizes.push_back(docs.size());
  }
  const auto r = RunValidator(paths);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("INVALID") == std::string::npos);
  for (size_t i = 0; i < paths.size(); ++i) {
    INFO(paths[i]);
    const Validation v = ValidationOf(r.output, paths[i]);
    CHECK(v.total == static_cast<int>(sizes[i]));  // every object was looked at
    CHECK(v.valid == v.total);
  }
}

TEST_CASE("the schema validator rejects broken objects, misspelt fields, unknown or removed APIs",
          "[deploy][k8s][schema]") {
  if (!Tools()) return;
  const std::vector<json> good = Render("dev");
  // Each case breaks exactly one object of the real rendered overlay; the validator must
  // report that object with the schema's own words and count every other object valid.
  struct Breakage {
    std::string what;
    std::string kind;
    std::string name;
    std::function<void(json&)> edit;
    std::string expect;  // in the INVALID line
  };
  const std::vector<Breakage> cases = {
      {"containerPort as a string", "Deployment", "controller",
       [](json& d) {
         d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "50050";
       },
       "containers/0/ports/0/containerPort must be integer"},
      {"replicas as a string", "Deployment", "inference",
       [](json& d) { d["spec"]["replicas"] = "two"; }, "data/spec/replicas must be integer"},
      {"required selector missing", "Deployment", "kvcache",
       [](json& d) { d["spec"].erase("selector"); },
       "data/spec must have required property selector"},
      {"required container image name missing", "Deployment", "compressor",
       [](json& d) { d["spec"]["template"]["spec"]["containers"][0].erase("name"); },
       "containers/0 must have required property name"},
      {"grpc probe without port", "Deployment", "controller",
       [](json& d) {
         d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"].erase("port");
       },
       "livenessProbe/grpc must have required property port"},
      {"Service port missing", "Service", "inference",
       [](json& d) { d["spec"]["ports"][0].erase("port"); },
       "data/spec/ports/0 must have required property port"},
      {"HPA without maxReplicas", "HorizontalPodAutoscaler", "inference",
       [](json& d) { d["spec"].erase("maxReplicas"); },
       "data/spec must have required property maxReplicas"},
      {"HPA on a removed API version", "HorizontalPodAutoscaler", "controller",
       [](json& d) { d["apiVersion"] = "autoscaling/v2beta2"; },
       "no longer served since Kubernetes 1.26"},
      {"NetworkPolicy port as an object", "NetworkPolicy", "controller",
       [](json& d) { d["spec"]["ingress"][0]["ports"][0]["protocol"] = json::object(); },
       "protocol must be string"},
      {"ServiceMonitor endpoint port as a number", "ServiceMonitor", "ctxstream",
       [](json& d) { d["spec"]["endpoints"][0]["port"] = 9460; },
       "data/spec/endpoints/0/port must be string"},
      {"ConfigMap data value not a string", "ConfigMap", "",
       [](json& d) { d["data"]["controller.flags"] = 1; }, "must be string"},
      {"an unknown kind", "PodDisruptionBudget", "redis",
       [](json& d) { d["kind"] = "PodDisruptionBudgett"; },
       "no schema for apiVersion policy/v1 kind PodDisruptionBudgett"},
      {"misspelt optional field", "Deployment", "inference",
       [](json& d) {
         json& c = d["spec"]["template"]["spec"]["containers"][0];
         c["readinesProbe"] = c["readinessProbe"];
         c.erase("readinessProbe");
       },
       "unknown field spec.template.spec.containers[0].readinesProbe"},
      {"field that no API type has", "Service", "kvcache",
       [](json& d) { d["spec"]["sessionAfinity"] = "None"; }, "unknown field spec.sessionAfinity"},
      {"name that is not a DNS-1123 subdomain", "Service", "redis",
       [](json& d) { d["metadata"]["name"] = "Redis_Store"; }, "is not a DNS-1123 subdomain"},
  };
  std::vector<std::string> paths;
  for (const auto& c : cases) {
    INFO(c.what);
    std::vector<json> docs = good;
    std::string name = c.name;
    if (name.empty()) {  // the flags ConfigMap's name carries kustomize's hash
      for (const auto& d : docs) {
        const std::string dn = d["metadata"]["name"];
        if (d["kind"] == c.kind && dn.rfind("ctxstream-flags-", 0) == 0) name = dn;
      }
    }
    c.edit(Find(docs, c.kind, name));
    paths.push_back(WriteStream(docs, "broken-" + std::to_string(paths.size())));
  }
  // The unbroken overlay, in the same run: only the edits above make objects invalid.
  const std::string intact = WriteStream(good, "intact-dev");
  paths.push_back(intact);
  const auto r = RunValidator(paths);
  INFO(r.output);
  CHECK(r.exit_code == 1);
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].what << " (" << paths[i] << ")");
    const Validation v = ValidationOf(r.output, paths[i]);
    CHECK(v.total == static_cast<int>(good.size()));
    CHECK(v.valid == v.total - 1);  // exactly the broken object
    CHECK(v.invalid_lines.find(cases[i].expect) != std::string::npos);
  }
  const Validation v = ValidationOf(r.output, intact);
  CHECK(v.valid == static_cast<int>(good.size()));
  CHECK(v.total == v.valid);
  // Unparsable YAML is a usage error, not a pass.
  const std::string bad = OutDir() + "/broken-yaml.yaml";
  {
    std::ofstream out(bad);
    out << "apiVersion: v1\nkind: [\n";
  }
  const auto unparsable = RunValidator({bad});
  INFO(unparsable.output);
  CHECK(unparsable.exit_code == 2);
}

TEST_CASE("probes target the container's gRPC port and the overall grpc.health.v1 status",
          "[deploy][k8s]") {
  if (!HaveTool("kubectl") || !HaveTool("yq")) {
    WARN("kubectl or yq not found: skipped");
    return;
  }
  for (const std::string overlay : {"dev", "prod"}) {
    for (const auto& d : Render(overlay)) {
      if (d["kind"] != "Deployment") continue;
      const std::string name = d["metadata"]["name"];
      for (const auto& c : d["spec"]["template"]["spec"]["containers"]) {
        std::map<std::string, int> ports;
        for (const auto& p : c.value("ports", json::array())) ports[p["name"]] = p["containerPort"];
        for (const char* probe : {"startupProbe", "livenessProbe", "readinessProbe"}) {
          if (!c.contains(probe)) continue;
          INFO(overlay << " " << name << " " << probe);
          const json& p = c[probe];
          if (p.contains("grpc")) {
            // The port the container declares as "grpc" (the service's --listen port,
            // checked against the flagfiles in deploy_files_test), and the empty service
            // name: the services set the overall status (common/rpc/server.cc
            // SetServingStatus), not per-service names.
            CHECK(p["grpc"]["port"] == ports["grpc"]);
            CHECK(p["grpc"].value("service", "") == "");
          } else if (p.contains("httpGet")) {
            const json& port = p["httpGet"]["port"];
            CHECK(
                (port.is_string() ? ports.count(port.get<std::string>()) == 1 : ports.size() > 0));
          }
        }
      }
    }
  }
  // The health service answers SERVING on a real service for the empty name, which is what
  // the kubelet's grpc probe (and the prod overlay's `ctxctl health`) asks.
  const auto& scraped = ctx::testing::ScrapeLiveServices();  // runs ctxctl health on each
  CHECK(scraped.size() == 4);
}

TEST_CASE("deploy/README.md's three commands name the real Dockerfile, overlay and Deployments",
          "[deploy][k8s][readme]") {
  if (!HaveTool("kubectl") || !HaveTool("yq")) {
    WARN("kubectl or yq not found: skipped");
    return;
  }
  const std::string readme = ctx::testing::ReadFileOrThrow(kRoot + "/deploy/README.md");
  const size_t section = readme.find("## Kubernetes in three commands");
  REQUIRE(section != std::string::npos);
  const size_t open = readme.find("```sh\n", section);
  REQUIRE(open != std::string::npos);
  const size_t close = readme.find("```", open + 6);
  std::istringstream block(readme.substr(open + 6, close - open - 6));
  std::vector<std::string> commands;
  for (std::string line; std::getline(block, line);) {
    if (!line.empty() && line[0] != '#') commands.push_back(line.substr(0, line.find("  #")));
  }
  REQUIRE(commands.size() == 3);

  // 1: the image is built from the real Dockerfile under the name the prod overlay deploys.
  std::smatch m;
  REQUIRE(
      std::regex_search(commands[0], m, std::regex(R"(docker build -f (\S+) -t (\S+):(\S+) \.)")));
  CHECK(fs::exists(kRoot + "/" + m[1].str()));
  const std::string repo = m[2].str();
  const std::string tag = m[3].str();
  // 2: the overlay applied.
  REQUIRE(std::regex_search(commands[1], m, std::regex(R"(kubectl apply -k (\S+))")));
  const std::string overlay_path = m[1].str();
  REQUIRE(overlay_path.rfind("deploy/k8s/overlays/", 0) == 0);
  const auto docs = Render(overlay_path.substr(std::string("deploy/k8s/overlays/").size()));
  std::string ns;
  std::set<std::string> deployments;
  std::map<std::string, std::string> image_of;  // Deployment -> its (first) container's image
  for (const auto& d : docs) {
    if (d["kind"] == "Namespace") ns = d["metadata"]["name"];
    if (d["kind"] != "Deployment") continue;
    const std::string name = d["metadata"]["name"];
    deployments.insert(name);
    image_of[name] = d["spec"]["template"]["spec"]["containers"][0]["image"];
  }
  // 3: the rollout waits in the overlay's namespace for every ctxstream service.
  REQUIRE(std::regex_search(commands[2], m, std::regex(R"(kubectl -n (\S+) rollout status (.*))")));
  CHECK(m[1].str() == ns);
  std::istringstream targets(m[2].str());
  std::set<std::string> waited;
  for (std::string t; targets >> t;) {
    INFO(t);
    REQUIRE(t.rfind("deploy/", 0) == 0);
    CHECK(deployments.count(t.substr(7)) == 1);
    waited.insert(t.substr(7));
  }
  for (const char* svc : {"controller", "inference", "kvcache", "compressor"}) {
    INFO(svc);
    CHECK(waited.count(svc) == 1);
  }
  // The image built (and loaded into the cluster) is the one the overlay's services run.
  for (const char* svc : {"controller", "inference", "kvcache", "compressor"}) {
    INFO(svc);
    CHECK(image_of[svc] == repo + ":" + tag);
  }
  CHECK(commands[0].find("kind load docker-image " + repo + ":" + tag) != std::string::npos);
  // The prod image named in the README's prod section is the one the prod overlay runs.
  std::set<std::string> prod_images;
  for (const auto& d : Render("prod")) {
    if (d["kind"] != "Deployment" || d["metadata"]["name"] == "redis" ||
        d["metadata"]["name"] == "grafana") {
      continue;
    }
    for (const auto& c : d["spec"]["template"]["spec"]["containers"]) {
      prod_images.insert(c["image"].get<std::string>());
    }
  }
  REQUIRE(prod_images.size() == 1);
  CHECK(readme.find("docker build -f docker/Dockerfile -t " + *prod_images.begin() + " .") !=
        std::string::npos);
}
