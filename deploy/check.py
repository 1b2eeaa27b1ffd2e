#!/usr/bin/env python3
"""check.py -- validates deploy/: every manifest parses, the manifests agree
with each other (names, labels, ports, paths), the security settings are in
place, the Dockerfile matches, and the ConfigMap's leanauthd.json passes
`leanauthd --check-config`.

usage: deploy/check.py [--leanauthd PATH] [--kubectl PATH | --no-kubectl]

Needs PyYAML (deploy/requirements.txt; Debian: python3-yaml). Without
--leanauthd the --check-config step is skipped; kubectl, when found on PATH,
is used offline only (`kubectl kustomize`). Ends with "N passed, N failed";
exit status 0 only if nothing failed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    sys.stderr.write(
        "check.py: PyYAML is missing for %s; install it with\n"
        "  python3 -m pip install -r deploy/requirements.txt   (or apt-get install python3-yaml)\n"
        % sys.executable)
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET_EXAMPLE = "secret.example.yaml"
PORTS = {"rpc": 7450, "events": 7451, "http": 7452}
RUNTIME_PACKAGES = {"libnng1", "libprotobuf-c1", "libcurl4", "libjansson4",
                    "libssl3", "ca-certificates"}
# leanauthd's own shutdown budget (server/daemon/daemon.c): drain <= 2 s,
# events linger 100 ms, plus cancelling workers; kept well above that.
SHUTDOWN_BUDGET_S = 5


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, (": " + detail) if detail else ""))
        return ok


def load_manifests(c):
    """Returns {(kind, name): (file, doc)} for every YAML file in deploy/."""
    docs = {}
    for fn in sorted(os.listdir(HERE)):
        if not fn.endswith((".yaml", ".yml")):
            continue
        try:
            with open(os.path.join(HERE, fn)) as f:
                loaded = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            c.check("parse %s" % fn, False, str(e))
            continue
        ok = all(isinstance(d, dict) and d.get("kind") and
                 (d.get("kind") == "Kustomization" or
                  (d.get("apiVersion") and d.get("metadata", {}).get("name")))
                 for d in loaded)
        c.check("parse %s (%d document%s)" % (fn, len(loaded), "" if len(loaded) == 1 else "s"),
                ok and len(loaded) > 0, "every document needs apiVersion, kind, metadata.name")
        for d in loaded:
            name = d.get("metadata", {}).get("name", fn)
            docs[(d["kind"], name)] = (fn, d)
    return docs


def one(docs, kind):
    found = [v[1] for k, v in docs.items() if k[0] == kind]
    return found[0] if len(found) == 1 else None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_of(url):
    m = re.search(r":(\d+)$", url)
    return int(m.group(1)) if m else None


def check_kustomization(c, docs):
    k = one(docs, "Kustomization")
    if not c.check("kustomization.yaml present", k is not None):
        return
    res = k.get("resources", [])
    c.check("kustomization resources exist",
            all(os.path.isfile(os.path.join(HERE, r)) for r in res), str(res))
    manifests = {fn for fn, _ in docs.values() if fn != "kustomization.yaml"}
    c.check("kustomization lists every manifest but the Secret example",
            set(res) == manifests - {SECRET_EXAMPLE},
            "listed %s, have %s" % (sorted(res), sorted(manifests)))
    c.check("kustomization does not apply the example Secret", SECRET_EXAMPLE not in res)


def check_deployment(c, docs, dockerfile_uid):
    dep = one(docs, "Deployment")
    if not c.check("one Deployment", dep is not None):
        return None
    spec = dep["spec"]
    tmpl = spec["template"]
    pod = tmpl["spec"]
    labels = tmpl["metadata"].get("labels", {})
    c.check("Deployment replicas is 2", spec.get("replicas") == 2, str(spec.get("replicas")))
    c.check("Deployment selector matches its pod labels",
            matches(spec["selector"].get("matchLabels"), labels))
    conts = pod.get("containers", [])
    if not c.check("one container", len(conts) == 1):
        return None
    ct = conts[0]
    argv = ct.get("command", []) + ct.get("args", [])
    c.check("container runs leanauthd --config /etc/leanauth/leanauthd.json",
            len(argv) == 3 and os.path.basename(argv[0]) == "leanauthd" and
            argv[1:] == ["--config", "/etc/leanauth/leanauthd.json"], str(argv))

    ports = {p.get("name"): p for p in ct.get("ports", [])}
    c.check("container ports named rpc/events/http = 7450/7451/7452",
            {n: p.get("containerPort") for n, p in ports.items()} == PORTS,
            str({n: p.get("containerPort") for n, p in ports.items()}))

    # Volumes and mounts: the config file and the Secret.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in ct.get("volumeMounts", [])}
    cfg_dir = os.path.dirname(argv[2]) if len(argv) == 3 else ""
    cfg_mount = mounts.get(cfg_dir)
    cfg_vol = vols.get(cfg_mount["name"]) if cfg_mount else None
    cm_name = cfg_vol.get("configMap", {}).get("name") if cfg_vol else None
    cm = docs.get(("ConfigMap", cm_name), (None, None))[1]
    c.check("config dir %s is a mounted ConfigMap volume" % cfg_dir, cm_name is not None)
    c.check("ConfigMap %s exists" % cm_name, cm is not None)
    cfg_text = None
    if cm is not None:
        items = {i["path"]: i["key"] for i in cfg_vol["configMap"].get("items", [])}
        key = items.get(os.path.basename(argv[2]), os.path.basename(argv[2]))
        cfg_text = cm.get("data", {}).get(key)
        c.check("ConfigMap has key %s" % key, cfg_text is not None)

    sec_vols = [v for v in vols.values() if "secret" in v]
    c.check("one Secret volume", len(sec_vols) == 1)
    secret = {"mount": None, "items": {}}
    if sec_vols:
        sv = sec_vols[0]
        sname = sv["secret"].get("secretName")
        sdoc = docs.get(("Secret", sname), (None, None))[1]
        c.check("Secret %s has an example manifest" % sname, sdoc is not None)
        keys = set((sdoc or {}).get("stringData", {})) | set((sdoc or {}).get("data", {}))
        items = {i["path"]: i["key"] for i in sv["secret"].get("items", [])}
        c.check("Secret items use keys the Secret has", items and set(items.values()) <= keys,
                "items %s, keys %s" % (sorted(items.values()), sorted(keys)))
        mode = sv["secret"].get("defaultMode")
        c.check("Secret files are not world-readable", mode is not None and mode & 0o007 == 0,
                oct(mode) if mode is not None else "no defaultMode")
        smounts = [m for m in ct.get("volumeMounts", []) if m["name"] == sv["name"]]
        c.check("Secret mounted read-only under /var/run/secrets/lean",
                len(smounts) == 1 and smounts[0]["mountPath"] == "/var/run/secrets/lean" and
                smounts[0].get("readOnly") is True)
        if smounts:
            secret = {"mount": smounts[0]["mountPath"], "items": items}
        placeholders = all(re.match(r"^REPLACE-", str(v))
                           for v in (sdoc or {}).get("stringData", {}).values())
        c.check("example Secret holds placeholders only",
                sdoc is not None and not sdoc.get("data") and placeholders)

    # Probes.
    lp, rp = ct.get("livenessProbe", {}), ct.get("readinessProbe", {})
    http_ok = lambda p: p.get("port") in ("http", PORTS["http"])
    c.check("liveness probe GET /healthz on the http port",
            lp.get("httpGet", {}).get("path") == "/healthz" and http_ok(lp.get("httpGet", {})))
    c.check("readiness probe GET /readyz on the http port",
            rp.get("httpGet", {}).get("path") == "/readyz" and http_ok(rp.get("httpGet", {})))

    ann = tmpl["metadata"].get("annotations", {})
    c.check("Prometheus scrape annotations point at http /metrics",
            ann.get("prometheus.io/scrape") == "true" and
            ann.get("prometheus.io/port") == str(PORTS["http"]) and
            ann.get("prometheus.io/path") == "/metrics", str(ann))

    # Shutdown: grace period covers preStop plus leanauthd's bounded shutdown.
    grace = pod.get("terminationGracePeriodSeconds")
    pre = ct.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = int(pre[-1]) if pre and pre[-1].isdigit() else 0
    c.check("terminationGracePeriodSeconds >= preStop + shutdown budget",
            isinstance(grace, int) and grace >= pre_s + SHUTDOWN_BUDGET_S,
            "grace %s, preStop %ss, budget %ss" % (grace, pre_s, SHUTDOWN_BUDGET_S))

    res = ct.get("resources", {})
    c.check("resources: cpu and memory requests and limits",
            all(k in res.get(s, {}) for s in ("requests", "limits") for k in ("cpu", "memory")))

    psc, csc = pod.get("securityContext", {}), ct.get("securityContext", {})
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    c.check("runAsNonRoot", psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True)
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    c.check("runAsUser is non-zero and matches the Dockerfile's USER",
            isinstance(uid, int) and uid != 0 and uid == dockerfile_uid,
            "pod %s, Dockerfile %s" % (uid, dockerfile_uid))
    c.check("readOnlyRootFilesystem", csc.get("readOnlyRootFilesystem") is True)
    c.check("allowPrivilegeEscalation false", csc.get("allowPrivilegeEscalation") is False)
    c.check("capabilities drop ALL", csc.get("capabilities", {}).get("drop") == ["ALL"] and
            not csc.get("capabilities", {}).get("add"))
    c.check("seccomp RuntimeDefault", seccomp == "RuntimeDefault")
    c.check("no service account token automount",
            pod.get("automountServiceAccountToken") is False)
    c.check("not privileged, no host namespaces",
            not csc.get("privileged") and not any(pod.get(k) for k in
                                                  ("hostNetwork", "hostPID", "hostIPC")))
    return {"labels": labels, "ports": ports, "cfg_text": cfg_text, "secret": secret,
            "replicas": spec.get("replicas")}


def check_config(c, d, leanauthd):
    text = d["cfg_text"]
    try:
        cfg = json.loads(text)
    except (TypeError, ValueError) as e:
        c.check("leanauthd.json is JSON", False, str(e))
        return
    c.check("leanauthd.json is JSON", True)
    listen = cfg.get("listen", {})
    for name in ("rpc", "events"):
        url = listen.get(name, "")
        c.check("listen.%s on 0.0.0.0 at the %s containerPort" % (name, name),
                re.match(r"^(tls\+)?tcp://0\.0\.0\.0:\d+$", url) is not None and
                port_of(url) == PORTS[name], url)
    c.check("listen.http on 0.0.0.0 at the http containerPort",
            listen.get("http") == "0.0.0.0:%d" % PORTS["http"], str(listen.get("http")))

    # Secrets come from files in the mounted Secret, never inline.
    mount, items = d["secret"]["mount"], d["secret"]["items"]
    files = [("lean_api", cfg.get("lean_api", {}), "api_token")]
    files += [("profiles[%d]" % i, p, "refresh_token") for i, p in enumerate(cfg.get("profiles", []))]
    for where, obj, key in files:
        path = obj.get(key + "_file")
        c.check("%s.%s_file is a file of the mounted Secret" % (where, key),
                mount is not None and path is not None and
                os.path.dirname(path) == mount and os.path.basename(path) in items,
                str(path))
        c.check("%s.%s is not inline" % (where, key), key not in obj and key + "_env" not in obj)

    if leanauthd is None:
        print("SKIP leanauthd --check-config (no --leanauthd given)")
        return
    with tempfile.TemporaryDirectory(prefix="leanauth-deploy-check-") as tmp:
        # The Secret's files, with placeholder values, in a temp dir.
        local = json.loads(text)
        for where, obj, key in [("lean_api", local["lean_api"], "api_token")] + \
                [("p", p, "refresh_token") for p in local.get("profiles", [])]:
            if key + "_file" in obj:
                fn = os.path.join(tmp, os.path.basename(obj[key + "_file"]))
                with open(fn, "w") as f:
                    f.write("placeholder-%s\n" % key)
                obj[key + "_file"] = fn
        good = os.path.join(tmp, "leanauthd.json")
        with open(good, "w") as f:
            json.dump(local, f)
        r = subprocess.run([leanauthd, "--check-config", good], capture_output=True,
                           text=True, timeout=30)
        c.check("leanauthd --check-config accepts the ConfigMap's config",
                r.returncode == 0 and ": ok" in r.stdout,
                "exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        # The same check must be able to fail: a typo'd key is refused.
        local["lean_api"]["user_idd"] = "1"
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump(local, f)
        r = subprocess.run([leanauthd, "--check-config", bad], capture_output=True,
                           text=True, timeout=30)
        c.check("leanauthd --check-config refuses a mistyped key (exit 2, names it)",
                r.returncode == 2 and "user_idd" in r.stderr,
                "exit %d: %s" % (r.returncode, r.stderr))


def check_service(c, docs, d):
    svc = one(docs, "Service")
    if not c.check("one Service", svc is not None):
        return
    spec = svc["spec"]
    c.check("Service selects the leanauthd pods", matches(spec.get("selector"), d["labels"]))
    got = {p.get("name"): p for p in spec.get("ports", [])}
    c.check("Service ports named rpc/events/http = 7450/7451/7452",
            {n: p.get("port") for n, p in got.items()} == PORTS)
    c.check("Service targetPorts name the container's ports",
            all(p.get("targetPort") == n and n in d["ports"] for n, p in got.items()),
            str({n: p.get("targetPort") for n, p in got.items()}))


def check_pdb(c, docs, d):
    pdb = one(docs, "PodDisruptionBudget")
    if not c.check("one PodDisruptionBudget", pdb is not None):
        return
    spec = pdb["spec"]
    c.check("PDB selects the leanauthd pods",
            matches(spec.get("selector", {}).get("matchLabels"), d["labels"]))
    ma = spec.get("minAvailable")
    c.check("PDB leaves one replica to evict",
            isinstance(ma, int) and 1 <= ma < (d["replicas"] or 0), str(ma))


def rule_ports(rule):
    return {(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports", [])}


def check_netpol(c, docs, d):
    np_ = one(docs, "NetworkPolicy")
    if not c.check("one NetworkPolicy", np_ is not None):
        return
    spec = np_["spec"]
    c.check("NetworkPolicy selects the leanauthd pods",
            matches(spec.get("podSelector", {}).get("matchLabels"), d["labels"]))
    c.check("NetworkPolicy restricts Ingress and Egress",
            sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"])
    ing = spec.get("ingress", [])
    client_rules = [r for r in ing if r.get("from")]
    open_rules = [r for r in ing if not r.get("from")]
    client_ok = len(client_rules) == 1 and all(
        f.get("podSelector", {}).get("matchLabels") == {"leanauth/client": "true"}
        for f in client_rules[0]["from"])
    c.check("rpc/events ingress only from leanauth/client=true pods",
            client_ok and rule_ports(client_rules[0]) ==
            {(PORTS["rpc"], "TCP"), (PORTS["events"], "TCP")})
    c.check("http ingress (probes, metrics) and nothing else open",
            len(open_rules) == 1 and rule_ports(open_rules[0]) == {(PORTS["http"], "TCP")})
    eg = spec.get("egress", [])
    allowed = set().union(*(rule_ports(r) for r in eg)) if eg else set()
    c.check("egress only DNS and HTTPS",
            all(r.get("ports") for r in eg) and
            allowed == {(53, "UDP"), (53, "TCP"), (443, "TCP")}, str(sorted(allowed)))


def parse_dockerfile(c):
    path = os.path.join(HERE, "Dockerfile")
    if not c.check("Dockerfile present", os.path.isfile(path)):
        return None
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l.split()[1] for l in lines if l.upper().startswith("FROM ")]
    c.check("Dockerfile: two stages on Debian 12",
            len(froms) == 2 and all(re.match(r"^debian:12(-slim)?(@sha256:[0-9a-f]+)?$", f)
                                    for f in froms), str(froms))
    stages = re.split(r"(?m)^FROM ", "\n".join(lines))
    runtime = stages[-1] if len(stages) >= 3 else ""
    build = stages[-2] if len(stages) >= 3 else ""
    c.check("Dockerfile: builds with cmake", "cmake --build" in build)
    m = re.search(r"apt-get install ([^&]*)", runtime)
    pkgs = {w for w in (m.group(1).split() if m else []) if not w.startswith("-")}
    c.check("Dockerfile: runtime installs only the runtime libraries",
            pkgs == RUNTIME_PACKAGES, str(sorted(pkgs)))
    users = [l.split()[1] for l in lines if l.upper().startswith("USER ")]
    uid = None
    if users and re.match(r"^\d+(:\d+)?$", users[-1]):
        uid = int(users[-1].split(":")[0])
    c.check("Dockerfile: runs as a numeric non-root USER", uid not in (None, 0), str(users))
    c.check("Dockerfile: entrypoint is leanauthd", re.search(
        r'ENTRYPOINT \["/usr/local/bin/leanauthd"\]', runtime) is not None)
    return uid


def check_kustomize_render(c, kubectl):
    r = subprocess.run([kubectl, "kustomize", HERE], capture_output=True, text=True, timeout=60)
    if not c.check("kubectl kustomize renders deploy/", r.returncode == 0, r.stderr.strip()):
        return
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(r.stdout) if d)
    c.check("rendered: ConfigMap, Deployment, NetworkPolicy, PDB, Service (no Secret)",
            kinds == ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
                      "Service"], str(kinds))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leanauthd", help="path to the leanauthd binary (--check-config)")
    ap.add_argument("--kubectl", help="kubectl for an offline `kubectl kustomize` render")
    ap.add_argument("--no-kubectl", action="store_true", help="skip the kustomize render")
    a = ap.parse_args()

    c = Checker()
    docs = load_manifests(c)
    check_kustomization(c, docs)
    uid = parse_dockerfile(c)
    d = check_deployment(c, docs, uid)
    if d is not None:
        if d["cfg_text"] is not None:
            check_config(c, d, a.leanauthd)
        check_service(c, docs, d)
        check_pdb(c, docs, d)
        check_netpol(c, docs, d)
    kubectl = None if a.no_kubectl else (a.kubectl or shutil.which("kubectl"))
    if kubectl:
        check_kustomize_render(c, kubectl)
    else:
        print("SKIP kubectl kustomize (no kubectl)")
    print("deploy.check: %d passed, %d failed" % (c.passed, c.failed))
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
