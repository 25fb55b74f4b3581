// Static checks of the deployment files: Kubernetes manifests rendered by `kubectl
// kustomize`, Prometheus config and rules (promtool), Grafana dashboards, the Dockerfile, the
// entrypoint and docker/compose.yaml. YAML is turned into JSON by yq (Debian package yq).
#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_support.h"
#include "tests/support/child_process.h"

namespace {

namespace fs = std::filesystem;
using ctx::testing::HaveTool;
using ctx::testing::ReadFileOrThrow;
using ctx::testing::RunCommand;
using ctx::testing::ShellQuote;
using nlohmann::json;

const std::string kRoot = CTX_SOURCE_DIR;

// Service name -> {gRPC port, metrics port}: common/rpc/server.cc's defaults.
const std::map<std::string, std::pair<int, int>> kPorts = {{"controller", {50050, 9460}},
                                                           {"inference", {50051, 9461}},
                                                           {"kvcache", {50052, 9462}},
                                                           {"compressor", {50053, 9463}}};

// The service folders that build a binary (services/<name>/CMakeLists.txt).
std::vector<std::string> ServiceFolders() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kRoot + "/services")) {
    if (entry.is_directory() && fs::exists(entry.path() / "CMakeLists.txt")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Runs `command` (which prints YAML) through `yq -c .`: one JSON document per line.
std::vector<json> YamlDocs(const std::string& command) {
  const auto r = RunCommand("bash -o pipefail -c " + ShellQuote(command + " | yq -c ."));
  INFO(command << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
  std::vector<json> docs;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#' || line == "null") continue;  // kubectl's warnings
    docs.push_back(json::parse(line));
  }
  return docs;
}

bool HaveYamlTools() {
  if (!HaveTool("yq")) {
    WARN("yq not found (scripts/setup.sh installs Debian's yq): skipped");
    return false;
  }
  return true;
}

std::string Str(const json& j, const std::string& pointer) {
  const auto p = json::json_pointer(pointer);
  return j.contains(p) && j.at(p).is_string() ? j.at(p).get<std::string>() : "";
}

// "--flag=value" from a flagfile's text, or "".
std::string FlagValue(const std::string& flagfile, const std::string& flag) {
  std::istringstream in(flagfile);
  std::string line;
  const std::string prefix = "--" + flag + "=";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

int PortOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? -1 : std::stoi(host_port.substr(colon + 1));
}

bool LabelsMatch(const json& selector, const json& labels) {
  if (!selector.is_object() || selector.empty()) return false;
  for (const auto& [k, v] : selector.items()) {
    if (!labels.contains(k) || labels[k] != v) return false;
  }
  return true;
}

// Grafana (deploy/grafana/kustomization.yaml, in both overlays): the dashboards and the
// provisioning files reach the pod where Grafana and the provider config look for them.
void CheckGrafana(const std::map<std::string, std::vector<json>>& by_kind) {
  std::map<std::string, json> cms;  // name without kustomize's hash suffix -> ConfigMap
  for (const auto& cm : by_kind.at("ConfigMap")) {
    const std::string name = Str(cm, "/metadata/name");
    cms[name.substr(0, name.rfind('-'))] = cm;
  }
  REQUIRE(cms.count("grafana-dashboards") == 1);
  REQUIRE(cms.count("grafana-dashboard-provider") == 1);
  REQUIRE(cms.count("grafana-datasources") == 1);
  // Every dashboard file, byte for byte.
  int dashboards = 0;
  for (const auto& entry : fs::directory_iterator(kRoot + "/deploy/grafana/dashboards")) {
    if (entry.path().extension() != ".json") continue;
    ++dashboards;
    const std::string file = entry.path().filename().string();
    INFO(file);
    CHECK(Str(cms["grafana-dashboards"], "/data/" + file) == ReadFileOrThrow(entry.path()));
  }
  CHECK(cms["grafana-dashboards"]["data"].size() == static_cast<size_t>(dashboards));
  const std::string provider_yaml =
      ReadFileOrThrow(kRoot + "/deploy/grafana/provisioning/dashboards/ctxstream.yaml");
  CHECK(Str(cms["grafana-dashboard-provider"], "/data/ctxstream.yaml") == provider_yaml);
  const auto provider =
      YamlDocs("cat " + ShellQuote(kRoot + "/deploy/grafana/provisioning/dashboards/"
                                           "ctxstream.yaml"));
  const std::string dash_path = Str(provider.at(0), "/providers/0/options/path");
  const auto datasource = YamlDocs(
      "printf '%s' " + ShellQuote(Str(cms["grafana-datasources"], "/data/prometheus.yaml")));
  REQUIRE(datasource.size() == 1);
  CHECK(Str(datasource[0], "/datasources/0/type") == "prometheus");
  CHECK(Str(datasource[0], "/datasources/0/url").rfind("http://", 0) == 0);

  const json* dep = nullptr;
  for (const auto& d : by_kind.at("Deployment")) {
    if (Str(d, "/metadata/name") == "grafana") dep = &d;
  }
  REQUIRE(dep != nullptr);
  const json& pod = (*dep)["spec"]["template"]["spec"];
  CHECK(pod["securityContext"]["runAsNonRoot"] == true);
  const json& c = pod["containers"][0];
  std::map<std::string, std::string> volume_cm;  // volume name -> ConfigMap name
  for (const auto& v : pod["volumes"]) {
    if (v.contains("configMap")) volume_cm[v["name"]] = Str(v, "/configMap/name");
  }
  std::map<std::string, std::string> mounted;  // mount path -> ConfigMap name
  for (const auto& m : c["volumeMounts"]) {
    if (volume_cm.count(m["name"])) mounted[m["mountPath"]] = volume_cm[m["name"]];
  }
  CHECK(mounted[dash_path] == Str(cms["grafana-dashboards"], "/metadata/name"));
  CHECK(mounted["/etc/grafana/provisioning/dashboards"] ==
        Str(cms["grafana-dashboard-provider"], "/metadata/name"));
  CHECK(mounted["/etc/grafana/provisioning/datasources"] ==
        Str(cms["grafana-datasources"], "/metadata/name"));
  // The home dashboard is one of the mounted files.
  for (const auto& e : c["env"]) {
    if (e["name"] == "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") {
      const std::string home = e["value"];
      CHECK(home.rfind(dash_path + "/", 0) == 0);
      CHECK(cms["grafana-dashboards"]["data"].contains(home.substr(dash_path.size() + 1)));
    }
  }
  // Probes on the UI port, which the Service and the NetworkPolicy open.
  CHECK(c["ports"][0]["name"] == "http");
  CHECK(c["ports"][0]["containerPort"] == 3000);
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    INFO(probe);
    CHECK(Str(c, std::string("/") + probe + "/httpGet/path") == "/api/health");
    CHECK(Str(c, std::string("/") + probe + "/httpGet/port") == "http");
  }
  bool policy = false;
  for (const auto& np : by_kind.at("NetworkPolicy")) {
    if (Str(np, "/metadata/name") != "grafana") continue;
    policy = true;
    CHECK(np["spec"]["ingress"][0]["ports"][0]["port"] == 3000);
    bool to_prometheus = false;
    for (const auto& rule : np["spec"]["egress"]) {
      for (const auto& peer : rule["to"]) {
        if (Str(peer, "/podSelector/matchLabels/app.kubernetes.io~1name") == "prometheus") {
          to_prometheus = rule["ports"][0]["port"] == 9090;
        }
      }
    }
    CHECK(to_prometheus);
  }
  CHECK(policy);
}

// Checks one rendered overlay; `tls` says whether the overlay is the mutual-TLS one, `grafana`
// whether it carries Grafana (deploy/grafana).
void CheckOverlay(const std::string& overlay, const std::string& ns, bool tls, bool grafana) {
  const auto docs =
      YamlDocs("kubectl kustomize " + ShellQuote(kRoot + "/deploy/k8s/overlays/" + overlay));
  std::map<std::string, std::vector<json>> by_kind;
  for (const auto& d : docs) {
    INFO(overlay << ": " << d.dump().substr(0, 200));
    REQUIRE(d.contains("apiVersion"));
    REQUIRE(d.contains("kind"));
    REQUIRE(!Str(d, "/metadata/name").empty());
    CHECK(Str(d, "/metadata/labels/app.kubernetes.io~1part-of") == "ctxstream");
    if (d["kind"] != "Namespace") CHECK(Str(d, "/metadata/namespace") == ns);
    by_kind[d["kind"].get<std::string>()].push_back(d);
  }
  REQUIRE(by_kind["Namespace"].size() == 1);
  CHECK(Str(by_kind["Namespace"][0], "/metadata/name") == ns);

  // The flags ConfigMap (name carries kustomize's content hash), and Grafana's three.
  REQUIRE(by_kind["ConfigMap"].size() == (grafana ? 4u : 1u));
  json flags;
  for (const auto& cm : by_kind["ConfigMap"]) {
    if (Str(cm, "/metadata/name").rfind("ctxstream-flags-", 0) == 0) flags = cm;
  }
  const std::string flags_name = Str(flags, "/metadata/name");
  REQUIRE(!flags_name.empty());
  if (grafana) CheckGrafana(by_kind);
  // Grafana's admin Secret: dev generates the compose credentials; prod ships no credentials
  // (the operator creates `grafana-admin`, deploy/README.md), so no default password reaches it.
  std::set<std::string> secrets;
  for (const auto& s : by_kind["Secret"]) secrets.insert(Str(s, "/metadata/name"));
  CHECK(secrets == (tls ? std::set<std::string>{} : std::set<std::string>{"grafana-admin"}));

  std::map<std::string, json> deployments;
  for (const auto& d : by_kind["Deployment"]) {
    CHECK(d["apiVersion"] == "apps/v1");
    deployments[Str(d, "/metadata/name")] = d;
  }
  for (const auto& [svc, ports] : kPorts) {
    INFO(overlay << " deployment " << svc);
    REQUIRE(deployments.count(svc) == 1);
    const json& dep = deployments[svc];
    const json& pod = dep["spec"]["template"];
    CHECK(LabelsMatch(dep["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]));
    CHECK(Str(pod, "/metadata/annotations/prometheus.io~1scrape") == "true");
    CHECK(Str(pod, "/metadata/annotations/prometheus.io~1port") == std::to_string(ports.second));
    CHECK(pod["spec"]["securityContext"]["runAsNonRoot"] == true);
    const json& containers = pod["spec"]["containers"];
    REQUIRE(containers.size() == 1);
    const json& c = containers[0];
    // Entrypoint argument and flagfile from the ConfigMap.
    REQUIRE(c["args"].size() >= 2);
    CHECK(c["args"][0] == svc);
    CHECK(c["args"][1] == "--flagfile=/etc/ctxstream/flags/" + svc + ".flags");
    const std::string flagfile = Str(flags, "/data/" + svc + ".flags");
    REQUIRE(!flagfile.empty());
    CHECK(PortOf(FlagValue(flagfile, "listen")) == ports.first);
    CHECK(PortOf(FlagValue(flagfile, "metrics_listen")) == ports.second);
    bool flags_volume = false;
    for (const auto& v : pod["spec"]["volumes"]) {
      if (Str(v, "/configMap/name") == flags_name) flags_volume = true;
    }
    CHECK(flags_volume);
    // Ports, named as the Service and ServiceMonitor expect.
    std::map<std::string, int> named;
    for (const auto& p : c["ports"]) named[p["name"].get<std::string>()] = p["containerPort"];
    CHECK(named["grpc"] == ports.first);
    CHECK(named["metrics"] == ports.second);
    // Resources.
    for (const char* r : {"/resources/requests/cpu", "/resources/requests/memory",
                          "/resources/limits/cpu", "/resources/limits/memory"}) {
      INFO(r);
      CHECK(c.contains(json::json_pointer(r)));
    }
    // Probes: the gRPC health service on the real gRPC port.
    for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
      INFO(probe);
      REQUIRE(c.contains(probe));
      const json& p = c[probe];
      if (!tls) {
        CHECK(p["grpc"]["port"] == ports.first);
        CHECK(!p.contains("exec"));
      } else {
        // The kubelet's grpc probe cannot speak TLS: ctxctl calls grpc.health.v1 with the
        // client certificate instead.
        CHECK(!p.contains("grpc"));
        const json& cmd = p["exec"]["command"];
        REQUIRE(cmd.size() >= 3);
        CHECK(cmd[0] == "ctxctl");
        CHECK(cmd[cmd.size() - 2] == "health");
        CHECK(cmd[cmd.size() - 1] == "localhost:" + std::to_string(ports.first));
      }
    }
    if (tls) {
      for (const char* f : {"tls_cert", "tls_key", "tls_ca", "client_tls_ca", "client_tls_cert",
                            "client_tls_key"}) {
        INFO(f);
        CHECK(FlagValue(flagfile, f).rfind("/etc/ctxstream/tls/", 0) == 0);
      }
      bool secret = false;
      bool mounted = false;
      for (const auto& v : pod["spec"]["volumes"]) {
        if (Str(v, "/secret/secretName") == "ctxstream-tls") secret = true;
      }
      for (const auto& m : c["volumeMounts"]) {
        if (m["mountPath"] == "/etc/ctxstream/tls") mounted = true;
      }
      CHECK(secret);
      CHECK(mounted);
    } else {
      CHECK(FlagValue(flagfile, "tls_cert").empty());
    }
  }
  // Redis for the shared store.
  REQUIRE(deployments.count("redis") == 1);
  for (const auto& [name, dep] : deployments) {
    for (const auto& c : dep["spec"]["template"]["spec"]["containers"]) {
      INFO(name);
      CHECK(c.contains(json::json_pointer("/resources/limits/memory")));
      CHECK(c.contains("readinessProbe"));
      CHECK(c.contains("livenessProbe"));
    }
  }

  // Services select a Deployment's pods and target named container ports.
  std::set<std::string> services;
  for (const auto& s : by_kind["Service"]) {
    const std::string name = Str(s, "/metadata/name");
    INFO(overlay << " service " << name);
    services.insert(name);
    REQUIRE(deployments.count(name) == 1);
    CHECK(LabelsMatch(s["spec"]["selector"],
                      deployments[name]["spec"]["template"]["metadata"]["labels"]));
    if (kPorts.count(name)) {
      std::map<std::string, int> ports;
      for (const auto& p : s["spec"]["ports"]) ports[p["name"].get<std::string>()] = p["port"];
      CHECK(ports["grpc"] == kPorts.at(name).first);
      CHECK(ports["metrics"] == kPorts.at(name).second);
    }
  }
  std::set<std::string> expected_services = {"compressor", "controller", "inference", "kvcache",
                                             "redis"};
  if (grafana) expected_services.insert("grafana");
  CHECK(services == expected_services);

  // One PodDisruptionBudget per Deployment.
  std::set<std::string> pdbs;
  for (const auto& p : by_kind["PodDisruptionBudget"]) {
    CHECK(p["apiVersion"] == "policy/v1");
    const std::string name = Str(p, "/metadata/name");
    REQUIRE(deployments.count(name) == 1);
    CHECK(LabelsMatch(p["spec"]["selector"]["matchLabels"],
                      deployments[name]["spec"]["template"]["metadata"]["labels"]));
    pdbs.insert(name);
  }
  CHECK(pdbs.size() == deployments.size());

  // HPAs (v2, CPU) for controller and inference.
  std::set<std::string> hpas;
  for (const auto& h : by_kind["HorizontalPodAutoscaler"]) {
    CHECK(h["apiVersion"] == "autoscaling/v2");
    const std::string target = Str(h, "/spec/scaleTargetRef/name");
    CHECK(deployments.count(target) == 1);
    CHECK(h["spec"]["minReplicas"].get<int>() <= h["spec"]["maxReplicas"].get<int>());
    CHECK(Str(h, "/spec/metrics/0/resource/name") == "cpu");
    hpas.insert(target);
  }
  CHECK(hpas == std::set<std::string>{"controller", "inference"});

  // ServiceMonitor scrapes the named metrics port of the ctxstream Services.
  REQUIRE(by_kind["ServiceMonitor"].size() == 1);
  const json& sm = by_kind["ServiceMonitor"][0];
  CHECK(sm["apiVersion"] == "monitoring.coreos.com/v1");
  CHECK(Str(sm, "/spec/endpoints/0/port") == "metrics");
  CHECK(Str(sm, "/spec/selector/matchLabels/app.kubernetes.io~1part-of") == "ctxstream");

  // NetworkPolicies: a default deny, and exactly DESIGN.md's paths between our pods, both as
  // ingress at the receiver and egress at the sender.
  using Edge = std::tuple<std::string, std::string, int>;  // from, to, port
  const std::set<Edge> expected = {
      {"controller", "compressor", 50053}, {"controller", "kvcache", 50052},
      {"controller", "inference", 50051},  {"kvcache", "inference", 50051},
      {"kvcache", "redis", 6379},          {"inference", "kvcache", 50052}};
  std::set<Edge> ingress;
  std::set<Edge> egress;
  bool default_deny = false;
  std::set<std::string> metrics_open;
  bool clients_to_controller = false;
  for (const auto& np : by_kind["NetworkPolicy"]) {
    const json& sel = np["spec"]["podSelector"]["matchLabels"];
    const std::string self = Str(sel, "/app.kubernetes.io~1name");
    if (self == "grafana") continue;  // CheckGrafana
    if (self.empty()) {
      default_deny = !np["spec"].contains("ingress") && !np["spec"].contains("egress") &&
                     np["spec"]["policyTypes"].size() == 2 &&
                     Str(sel, "/app.kubernetes.io~1part-of") == "ctxstream";
      continue;
    }
    for (const auto& rule : np["spec"].value("ingress", json::array())) {
      for (const auto& peer : rule["from"]) {
        const std::string src = Str(peer, "/podSelector/matchLabels/app.kubernetes.io~1name");
        for (const auto& port : rule["ports"]) {
          const int p = port["port"];
          if (src == "prometheus") {
            CHECK(p == kPorts.at(self).second);
            metrics_open.insert(self);
          } else if (Str(peer, "/podSelector/matchLabels/ctxstream.io~1client") == "true") {
            CHECK(self == "controller");
            CHECK(p == kPorts.at("controller").first);
            clients_to_controller = true;
          } else {
            CHECK(!peer.contains("namespaceSelector"));  // our pods: same namespace only
            ingress.insert({src, self, p});
          }
        }
      }
    }
    for (const auto& rule : np["spec"].value("egress", json::array())) {
      for (const auto& peer : rule["to"]) {
        const std::string dst = Str(peer, "/podSelector/matchLabels/app.kubernetes.io~1name");
        for (const auto& port : rule["ports"]) {
          const int p = port["port"];
          if (p == 53) continue;  // DNS
          egress.insert({self, dst, p});
        }
      }
    }
  }
  CHECK(default_deny);
  CHECK(clients_to_controller);
  CHECK(metrics_open == std::set<std::string>{"compressor", "controller", "inference", "kvcache"});
  CHECK(ingress == expected);
  CHECK(egress == expected);
}

}  // namespace

TEST_CASE("kustomize renders the dev and prod overlays with probes, resources and policies",
          "[deploy][k8s]") {
  if (!HaveTool("kubectl")) {
    WARN("kubectl not found (scripts/setup.sh installs Debian's kubernetes-client): skipped");
    return;
  }
  if (!HaveYamlTools()) return;
  SECTION("dev") { CheckOverlay("dev", "ctxstream-dev", /*tls=*/false, /*grafana=*/true); }
  SECTION("prod") { CheckOverlay("prod", "ctxstream", /*tls=*/true, /*grafana=*/true); }
}

TEST_CASE("promtool accepts the Prometheus config and rules, and the rule unit tests pass",
          "[deploy][prometheus]") {
  if (!HaveTool("promtool")) {
    WARN("promtool not found (scripts/setup.sh installs package prometheus): skipped");
    return;
  }
  const std::string dir = kRoot + "/deploy/prometheus";
  for (const char* cmd : {"promtool check config prometheus.yml", "promtool check rules rules.yml",
                          "promtool test rules rules_test.yml"}) {
    const auto r = RunCommand("cd " + ShellQuote(dir) + " && " + cmd);
    INFO(cmd << "\n" << r.output);
    CHECK(r.exit_code == 0);
  }
  // Debian's Prometheus is built without Kubernetes service discovery, so its promtool
  // rejects kubernetes_sd_configs; everything else in the file must be valid.
  const auto r =
      RunCommand("cd " + ShellQuote(dir) + " && promtool check config prometheus-k8s.yml");
  INFO(r.output);
  if (r.exit_code != 0) {
    CHECK(r.output.find("field kubernetes_sd_configs not found") != std::string::npos);
    WARN(
        "this promtool lacks Kubernetes service discovery; prometheus-k8s.yml checked for "
        "that error only");
  }
}

TEST_CASE("rules and dashboards reference only exported metrics", "[deploy][grafana]") {
  const std::set<std::string> exported = ctx::testing::ExportedSampleNames();
  REQUIRE(exported.size() > 40);
  auto check_names = [&](const std::string& where, const std::string& text) {
    const auto names = ctx::testing::MetricIdentifiers(text);
    CHECK(!names.empty());
    for (const auto& n : names) {
      INFO(where << " references " << n << ", which no service exports (docs/metrics.md)");
      CHECK(exported.count(n) == 1);
    }
  };
  check_names("rules.yml", ReadFileOrThrow(kRoot + "/deploy/prometheus/rules.yml"));

  std::set<std::string> uids;
  int dashboards = 0;
  for (const auto& entry : fs::directory_iterator(kRoot + "/deploy/grafana/dashboards")) {
    if (entry.path().extension() != ".json") continue;
    ++dashboards;
    const std::string file = entry.path().filename().string();
    INFO(file);
    const json dash = json::parse(ReadFileOrThrow(entry.path().string()));
    uids.insert(dash.at("uid").get<std::string>());
    // A Prometheus datasource variable, used by every panel and target.
    bool ds_var = false;
    for (const auto& v : dash["templating"]["list"]) {
      if (v["type"] == "datasource" && v["query"] == "prometheus" && v["name"] == "datasource") {
        ds_var = true;
      }
    }
    CHECK(ds_var);
    int exprs = 0;
    for (const auto& panel : dash["panels"]) {
      if (panel["type"] == "row") continue;
      INFO(panel["title"].get<std::string>());
      CHECK(panel["datasource"]["uid"] == "${datasource}");
      REQUIRE(!panel["targets"].empty());
      for (const auto& t : panel["targets"]) {
        CHECK(t["datasource"]["uid"] == "${datasource}");
        const std::string expr = t["expr"];
        check_names(file, expr);
        // Balanced brackets: a cheap guard against broken PromQL.
        for (auto [open, close] : {std::pair{'(', ')'}, {'{', '}'}, {'[', ']'}}) {
          CHECK(std::count(expr.begin(), expr.end(), open) ==
                std::count(expr.begin(), expr.end(), close));
        }
        ++exprs;
      }
    }
    CHECK(exprs >= 8);
  }
  CHECK(dashboards == 2);
  CHECK(uids == std::set<std::string>{"ctxstream-bandwidth", "ctxstream-delay"});

  // What the issue asks each dashboard to show.
  const std::string bw =
      ReadFileOrThrow(kRoot + "/deploy/grafana/dashboards/ctxstream-bandwidth.json");
  for (const char* m :
       {"ctxstream_controller_bandwidth_estimate_bytes_per_second",
        "ctxstream_inference_fetch_bytes_total", "ctxstream_context_bytes_total",
        "ctxstream_codec_compression_ratio_bucket", "ctxstream_codec_encode_seconds_total",
        "ctxstream_codec_decode_seconds_total"}) {
    INFO(m);
    CHECK(bw.find(m) != std::string::npos);
  }
  const std::string dl = ReadFileOrThrow(kRoot + "/deploy/grafana/dashboards/ctxstream-delay.json");
  for (const char* m :
       {"histogram_quantile(0.99", "ctxstream_controller_ttft_seconds_bucket",
        "ctxstream_controller_stage_duration_seconds",
        "ctxstream_controller_predicted_ttft_seconds", "ctxstream_controller_slo_violations_total",
        "ctxstream_controller_decisions_total"}) {
    INFO(m);
    CHECK(dl.find(m) != std::string::npos);
  }
}

TEST_CASE("every flagfile of every overlay is accepted by its service binary", "[deploy][k8s]") {
  for (const auto& [svc, ports] : kPorts) {
    const std::string binary = ctx::testing::BinaryPathForDeploy("ctxstream-" + svc);
    const auto help = RunCommand(ShellQuote(binary) + " --helpfull");
    for (const char* dir : {"base/flags", "overlays/dev", "overlays/prod"}) {
      const std::string path = kRoot + "/deploy/k8s/" + dir + "/" + svc + ".flags";
      INFO(path);
      const std::string text = ReadFileOrThrow(path);
      // Every flag is one the binary defines (absl exits at start-up on unknown flags).
      std::istringstream in(text);
      std::string flagfile_without_ports;
      for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        REQUIRE(line.rfind("--", 0) == 0);
        const std::string name = line.substr(2, line.find('=') - 2);
        INFO(name);
        CHECK(help.output.find("    --" + name + " (") != std::string::npos);
        const bool port = name == "listen" || name == "metrics_listen";
        const bool tls = name.find("tls_") != std::string::npos;  // files only in the pod
        if (!port && !tls) flagfile_without_ports += line + "\n";
      }
      // And the binary starts with the file (comments included), on ephemeral ports.
      const std::string copy = std::string(CTX_BINARY_DIR) + "/tests/deploy/" + svc + ".flags";
      {
        std::ofstream out(copy);
        out << "# comment lines as in the ConfigMap\n" << flagfile_without_ports;
      }
      auto running = ctx::testing::StartService(svc, {"--flagfile=" + copy});
      running.process->Signal(SIGTERM);
      CHECK(running.process->WaitExit(std::chrono::seconds(20)) == 0);
    }
  }
}

TEST_CASE("Grafana provisioning and compose mount the dashboards and the Prometheus config",
          "[deploy][docker][grafana]") {
  if (!HaveYamlTools()) return;
  const auto provider = YamlDocs(
      "cat " + ShellQuote(kRoot + "/deploy/grafana/provisioning/dashboards/ctxstream.yaml"));
  REQUIRE(provider.size() == 1);
  const std::string dash_path = Str(provider[0], "/providers/0/options/path");
  const auto datasource = YamlDocs(
      "cat " + ShellQuote(kRoot + "/deploy/grafana/provisioning/datasources/prometheus.yaml"));
  REQUIRE(datasource.size() == 1);
  CHECK(Str(datasource[0], "/datasources/0/type") == "prometheus");

  const auto compose = YamlDocs("cat " + ShellQuote(kRoot + "/docker/compose.yaml"));
  REQUIRE(compose.size() == 1);
  const json& svcs = compose[0]["services"];
  for (const char* s :
       {"controller", "inference", "kvcache", "compressor", "redis", "prometheus", "grafana"}) {
    INFO(s);
    CHECK(svcs.contains(s));
  }
  std::set<std::string> images;
  for (const auto& [svc, ports] : kPorts) {
    INFO(svc);
    const json& s = svcs[svc];
    images.insert(Str(s, "/image"));
    CHECK(Str(s, "/build/dockerfile") == "docker/Dockerfile");
    CHECK(s["command"][0] == svc);
    bool metrics_flag = false;
    for (const auto& arg : s["command"]) {
      if (arg == "--metrics_listen=0.0.0.0:" + std::to_string(ports.second)) metrics_flag = true;
    }
    CHECK(metrics_flag);
  }
  CHECK(images.size() == 1);  // one image, the entrypoint picks the service
  CHECK(fs::exists(kRoot + "/docker/" + Str(svcs["controller"], "/build/context") +
                   "/CMakeLists.txt"));

  // Every bind mount's source exists; Grafana gets the dashboards where the provider looks.
  std::map<std::string, std::string> mounts;  // target -> source
  for (const char* s : {"prometheus", "grafana"}) {
    for (const auto& v : svcs[s]["volumes"]) {
      const std::string spec = v.get<std::string>();
      const size_t colon = spec.find(':');
      const std::string source = spec.substr(0, colon);
      std::string target = spec.substr(colon + 1);
      target = target.substr(0, target.find(':'));
      mounts[target] = source;
      if (source.rfind("..", 0) == 0) {
        INFO(spec);
        CHECK(fs::exists(kRoot + "/docker/" + source));
      }
    }
  }
  CHECK(mounts[dash_path] == "../deploy/grafana/dashboards");
  CHECK(mounts["/etc/grafana/provisioning/dashboards"] ==
        "../deploy/grafana/provisioning/dashboards");
  CHECK(mounts["/etc/prometheus/prometheus.yml"] == "../deploy/prometheus/prometheus.yml");
  CHECK(mounts["/etc/prometheus/rules.yml"] == "../deploy/prometheus/rules.yml");

  // Prometheus scrapes each compose service on its metrics port.
  const auto prom = YamlDocs("cat " + ShellQuote(kRoot + "/deploy/prometheus/prometheus.yml"));
  REQUIRE(prom.size() == 1);
  std::set<std::string> targets;
  for (const auto& job : prom[0]["scrape_configs"]) {
    for (const auto& sc : job.value("static_configs", json::array())) {
      for (const auto& t : sc["targets"]) targets.insert(t.get<std::string>());
    }
  }
  for (const auto& [svc, ports] : kPorts) {
    INFO(svc);
    CHECK(targets.count(svc + ":" + std::to_string(ports.second)) == 1);
  }
}

TEST_CASE("Dockerfile: bookworm-slim runtime, non-root, every binary copied, entrypoint real",
          "[deploy][docker]") {
  const std::string dockerfile = ReadFileOrThrow(kRoot + "/docker/Dockerfile");
  // Stages.
  std::vector<std::string> froms;
  std::istringstream in(dockerfile);
  std::string line;
  std::string last_stage;  // text of the final stage
  while (std::getline(in, line)) {
    if (line.rfind("FROM ", 0) == 0) {
      froms.push_back(line);
      last_stage.clear();
    }
    last_stage += line + "\n";
  }
  REQUIRE(froms.size() == 2);
  CHECK(froms[0] == "FROM debian:bookworm-slim AS build");
  CHECK(froms[1] == "FROM debian:bookworm-slim AS runtime");
  // Non-root user in the runtime stage.
  const std::regex user_re("\nUSER ([^\n]+)\n");
  std::smatch m;
  REQUIRE(std::regex_search(last_stage, m, user_re));
  CHECK(m[1].str().find("root") == std::string::npos);
  CHECK(m[1].str().rfind("0:", 0) != 0);
  CHECK(m[1].str() != "0");
  // No -dev package or compiler in the runtime stage; it installs the computed list.
  CHECK(last_stage.find("-dev") == std::string::npos);
  CHECK(last_stage.find("setup.sh") == std::string::npos);
  CHECK(last_stage.find("runtime-packages.txt") != std::string::npos);
  CHECK(last_stage.find("COPY models/ /opt/ctxstream/models/") != std::string::npos);

  // Every service folder's binary (and ctxctl) is built, copied, and reachable by entrypoint.
  const std::string entrypoint = ReadFileOrThrow(kRoot + "/docker/entrypoint.sh");
  std::vector<std::string> binaries;
  for (const auto& svc : ServiceFolders()) binaries.push_back("ctxstream-" + svc);
  binaries.push_back("ctxctl");
  REQUIRE(binaries.size() == 5);
  for (const auto& b : binaries) {
    INFO(b);
    CHECK(dockerfile.find("ninja -C /build") != std::string::npos);
    CHECK(last_stage.find("/out/bin/" + b + " ") != std::string::npos);
    // The build stage's ninja line names the target.
    const size_t ninja = dockerfile.find("ninja -C /build");
    CHECK(dockerfile.substr(ninja, 200).find(b) != std::string::npos);
  }
  for (const auto& svc : ServiceFolders()) {
    INFO(svc);
    const bool in_case = entrypoint.find(svc + " |") != std::string::npos ||
                         entrypoint.find("| " + svc) != std::string::npos;
    CHECK(in_case);
  }
  CHECK(entrypoint.find("exec \"/usr/local/bin/ctxstream-$cmd\"") != std::string::npos);
  CHECK(dockerfile.find("/usr/local/bin/ctxstream-entrypoint") != std::string::npos);

  // The entrypoint script itself: known programs exec, unknown ones are refused.
  const std::string ep = ShellQuote(kRoot + "/docker/entrypoint.sh");
  CHECK(RunCommand("sh " + ep + " --help").exit_code == 0);
  const auto bad = RunCommand("sh " + ep + " nosuchservice");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("unknown program 'nosuchservice'") != std::string::npos);
  CHECK(RunCommand("sh " + ep).exit_code == 2);
}

TEST_CASE("runtime packages are exactly those the built binaries link against",
          "[deploy][docker]") {
  if (!HaveTool("dpkg") || !HaveTool("ldd")) {
    WARN("dpkg or ldd not found: skipped");
    return;
  }
  std::string args;
  for (const auto& svc : ServiceFolders()) {
    args += " " + ShellQuote(ctx::testing::BinaryPathForDeploy("ctxstream-" + svc));
  }
  args += " " + ShellQuote(ctx::testing::BinaryPathForDeploy("ctxctl"));
  const std::string script = ShellQuote(kRoot + "/docker/runtime-packages.sh");
  const auto owners = RunCommand(script + " --owners" + args);
  INFO(owners.output);
  REQUIRE(owners.exit_code == 0);
  const auto ldd = RunCommand("ldd" + args + " | awk '/=> \\// {print $3}' | sort -u");
  REQUIRE(ldd.exit_code == 0);

  std::set<std::string> linked;  // every library path the binaries load
  std::istringstream ll(ldd.output);
  for (std::string l; std::getline(ll, l);) linked.insert(l);
  REQUIRE(linked.size() > 10);
  std::set<std::string> packages;
  std::set<std::string> owned;
  std::istringstream ol(owners.output);
  for (std::string l; std::getline(ol, l);) {
    const size_t tab = l.find('\t');
    REQUIRE(tab != std::string::npos);
    const std::string pkg = l.substr(0, tab);
    const std::string lib = l.substr(tab + 1);
    INFO(pkg << " for " << lib);
    CHECK(pkg.find("-dev") == std::string::npos);  // runtime libraries only
    CHECK(linked.count(lib) == 1);                 // a package only for a library loaded
    packages.insert(pkg);
    owned.insert(lib);
  }
  CHECK(owned == linked);  // and every library loaded has its package
  for (const char* expected : {"libgrpc++1.51", "libprotobuf32", "libprometheus-cpp-pull1.0"}) {
    INFO(expected);
    CHECK(packages.count(expected) == 1);
  }
  // The image installs the list computed from exactly the binaries it copies.
  const std::string dockerfile = ReadFileOrThrow(kRoot + "/docker/Dockerfile");
  CHECK(dockerfile.find("docker/runtime-packages.sh /out/bin/* > /out/runtime-packages.txt") !=
        std::string::npos);
}
