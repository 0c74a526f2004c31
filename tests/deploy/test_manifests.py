"""deploy/: every Kubernetes manifest validates against the Kubernetes schemas (kubernetes-validate, offline), the
KEDA resources have the structure KEDA reads, and the image, manifests and compose file agree with Kinema itself:
its settings, its commands, its health routes, a non-root user, no committed secret."""

from __future__ import annotations

import copy
import re
import shlex
from typing import Any

import kubernetes_validate
import pytest
from click.testing import CliRunner

from kinema.api.ops import router as ops_router
from kinema.cli import main as kinema_cli
from kinema.config import Settings
from tests.deploy.manifests import DEPLOY, KUBERNETES, documents, find, keda_query, resources

K8S_VERSION = "1.32.0"  # a schema set kubernetes-validate bundles; the manifests use nothing newer
SETTINGS = {f"KINEMA_{name.upper()}" for name in Settings.model_fields}
NON_SETTINGS_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}  # boto3's own credential chain


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Deployment and Job."""
    out = []
    for r in resources():
        if r["kind"] in ("Deployment", "Job"):
            out.append((f"{r['kind']}/{r['metadata']['name']}", r["spec"]["template"]["spec"]))
    return out


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


@pytest.mark.parametrize(
    "doc", [r for r in resources() if not r["apiVersion"].startswith("keda.sh/")], ids=lambda r: r["metadata"]["name"]
)
def test_manifest_validates_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(strip(doc), K8S_VERSION, strict=True)


def test_the_validator_catches_a_broken_manifest() -> None:
    """The check above is not vacuous: a misspelt field and a wrong type are both refused."""
    api = strip(find("Deployment", "kinema-api"))
    typo = copy.deepcopy(api)
    typo["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)
    wrong = copy.deepcopy(api)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_examples_and_the_job() -> None:
    (kustomization,) = documents(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secrets.example.yaml", "migrate-job.yaml"}
    assert {i["name"] for i in kustomization["images"]} == {"kinema"}


def test_api_probes_hit_routes_that_exist() -> None:
    api = find("Deployment", "kinema-api")["spec"]["template"]["spec"]
    (container,) = api["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    routes = {getattr(r, "path", "") for r in ops_router.routes}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["path"] in routes
        assert get["port"] in ports
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KINEMA_WORKERS"] == "0" and env["KINEMA_HOST"] == "0.0.0.0"
    assert int(env["KINEMA_PORT"]) == ports["http"]
    service = find("Service", "kinema-api")
    assert service["spec"]["selector"] == find("Deployment", "kinema-api")["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_every_gpu_pool_asks_for_one_gpu_and_outlives_its_grace() -> None:
    workers = [r for r in resources() if r["kind"] == "Deployment" and "worker" in r["metadata"]["name"]]
    products = {w["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"] for w in workers}
    assert len(workers) >= 2 and len(products) == len(workers)  # one Deployment per pool
    for w in workers:
        pod = w["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
        args = container["args"]
        assert args[0] == "worker"
        grace = float(args[args.index("--grace") + 1])
        assert grace + 30 <= pod["terminationGracePeriodSeconds"]  # the give-back happens before the SIGKILL
        assert w["spec"]["selector"]["matchLabels"].items() <= w["spec"]["template"]["metadata"]["labels"].items()


def test_pods_run_non_root_read_only_and_without_privileges() -> None:
    for name, pod in pod_specs():
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])


def test_commands_and_settings_exist() -> None:
    """Every container runs a real `kinema` command with real options, and every KINEMA_* name is a setting."""
    commands = kinema_cli.commands  # type: ignore[attr-defined]
    for name, pod in pod_specs():
        for c in pod["containers"]:
            sub, *options = c["args"]
            assert sub in commands, (name, sub)
            known = {o for p in commands[sub].params for o in getattr(p, "opts", [])}
            assert {o for o in options if o.startswith("--")} <= known, (name, options)
            for e in c.get("env", []):
                assert e["name"] in SETTINGS, (name, e["name"])
    config = find("ConfigMap", "kinema-config")["data"]
    assert set(config) <= SETTINGS
    Settings(**{k.removeprefix("KINEMA_").lower(): v for k, v in config.items() if k != "KINEMA_TRUSTED_PROXIES"})


def test_migrate_command_migrates(tmp_path: Any) -> None:
    """The Job's `kinema migrate` creates the schema and exits 0 (and again, with nothing to do)."""
    import sqlite3

    db = tmp_path / "k.db"
    env = {"KINEMA_DATA_DIR": str(tmp_path), "KINEMA_DATABASE_URL": f"sqlite:///{db}", "KINEMA_CONFIG": "/nonexistent"}
    for _ in range(2):
        result = CliRunner().invoke(kinema_cli, ["migrate"], env=env)
        assert result.exit_code == 0, result.output
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"videos", "pauses", "alembic_version"} <= tables


def test_secrets_are_referenced_never_committed() -> None:
    examples = {r["metadata"]["name"]: r for r in resources() if r["kind"] == "Secret"}
    assert all(r["_file"] == "secrets.example.yaml" for r in examples.values())
    referenced: set[tuple[str, str]] = set()  # (secret, key); key "*" for the whole secret
    for _, pod in pod_specs():
        for v in pod.get("volumes", []):
            if "secret" in v:
                referenced.add((v["secret"]["secretName"], "*"))
        for c in pod.get("initContainers", []) + pod["containers"]:
            for e in c.get("env", []):
                if "valueFrom" in e:
                    ref = e["valueFrom"]["secretKeyRef"]
                    referenced.add((ref["name"], ref["key"]))
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    referenced.add((source["secretRef"]["name"], "*"))
    auth = find("TriggerAuthentication", "kinema-keda-postgres")
    referenced |= {(ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert {name for name, _ in referenced} == set(examples)
    for name, key in referenced:
        secret = examples[name]
        keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
        assert key == "*" or key in keys, (name, key)
    for secret in examples.values():  # placeholders only
        for value in secret.get("stringData", {}).values():
            assert "REPLACE_ME" in value
        for value in secret.get("data", {}).values():
            import base64

            assert base64.b64decode(value) == b"REPLACE_ME"


def test_keda_scaled_object_structure() -> None:
    scaled = find("ScaledObject", "kinema-worker-l40s")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    find("Deployment", target["name"])  # scales a pool that exists
    assert 0 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values())  # KEDA's trigger metadata is a string map
    assert float(meta["targetQueryValue"]) > 0 and float(meta["activationTargetQueryValue"]) >= 0
    assert meta["query"].lstrip().upper().startswith("SELECT") and ";" not in meta["query"]
    auth = find(scaled["kind"].replace("ScaledObject", "TriggerAuthentication"), trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == ["connection"]
    assert keda_query() == meta["query"]


def test_network_policy_admits_only_the_api_port() -> None:
    deny = find("NetworkPolicy", "kinema-default-deny")
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny["spec"]
    allow = find("NetworkPolicy", "kinema-api-ingress")
    assert allow["spec"]["podSelector"] == find("Deployment", "kinema-api")["spec"]["selector"]
    assert [p["port"] for rule in allow["spec"]["ingress"] for p in rule["ports"]] == [8000]
    blocked = [b for rule in deny["spec"]["egress"] for t in rule.get("to", []) for b in t["ipBlock"].get("except", [])]
    assert "169.254.169.254/32" in blocked


def test_disruption_budgets_select_real_pods() -> None:
    for pdb in (r for r in resources() if r["kind"] == "PodDisruptionBudget"):
        wanted = pdb["spec"]["selector"]["matchLabels"].items()
        matched = [
            d
            for d in resources()
            if d["kind"] == "Deployment" and wanted <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matched, pdb["metadata"]["name"]


# -- the image ---------------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_non_root_with_both_variants() -> None:
    steps = dockerfile()
    stages = [args.split()[-1] for word, args in steps if word == "FROM"]
    assert stages == ["build", "runtime"]
    runtime = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][1] :]
    users = [args for word, args in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(w == "COPY" and a.startswith("--from=build /opt/kinema") for w, a in runtime)
    assert not any(w == "COPY" and "src" in a.split() for w, a in runtime)  # no sources in the final image
    health = [a for w, a in runtime if w == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    assert [a for w, a in runtime if w == "ENTRYPOINT"] == ['["kinema"]']
    assert [a for w, a in runtime if w == "CMD"] == ['["serve"]']
    run = " ".join(a for w, a in steps if w == "RUN")
    assert "cpu)" in run and "cuda)" in run and "download.pytorch.org/whl/cpu" in " ".join(a for _, a in steps)
    # The user the image runs as is the one every manifest and compose service expects.
    uid = int(users[-1].split(":")[0])
    assert {pod["securityContext"]["runAsUser"] for _, pod in pod_specs()} == {uid}
    env = " ".join(a for w, a in runtime if w == "ENV")
    assert {m for m in re.findall(r"(KINEMA_[A-Z_]+)=", env)} <= SETTINGS


# -- compose -------------------------------------------------------------------------------------------------------


def test_compose_services_images_and_settings() -> None:
    (compose,) = documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"postgres", "minio", "migrate", "api"} <= set(services)
    assert any(name.startswith("worker") for name in services)
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)  # pinned
        if image.startswith("kinema:"):
            assert (DEPLOY.parent / svc["build"]["context"].replace("..", ".") / svc["build"]["dockerfile"]).is_file()
            env = svc.get("environment", {})
            for key in env:
                assert key in SETTINGS or key in NON_SETTINGS_ENV, (name, key)
            command = svc["command"]
            assert command[0] in kinema_cli.commands, (name, command)  # type: ignore[attr-defined]
    # Kinema talks to the services compose runs, under the names the S3 store reads.
    api_env = services["api"]["environment"]
    assert api_env["KINEMA_BLOB_URL"].startswith("s3://")
    assert api_env["KINEMA_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "@postgres:5432/" in api_env["KINEMA_DATABASE_URL"]
    assert api_env["KINEMA_WORKERS"] == "0"
    gpu = services["worker-gpu0"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu[0]["driver"] == "nvidia" and gpu[0]["capabilities"] == ["gpu"]
    # No password in the file: each comes from deploy/.env, and compose refuses to start without it.
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (name, key)
    assert ":${POSTGRES_PASSWORD:?" in api_env["KINEMA_DATABASE_URL"]
    assert shlex.split(services["minio-init"]["command"][0])[0] == "mc"
