# The official Python SDK (azure-mgmt-containerinstance, its default api-version) drives container group profiles and NGroups against berth:
# a profile, an NGroup of 3 on it, scaled to 6 and to 2, a rolling update to a new revision (the members recorded every 100 ms while it runs).
# Prints one JSON object of what it saw; test/e2e/ngroups-python.test.ts checks it. Trusts berth's CA through REQUESTS_CA_BUNDLE.
# Env: BERTH_ENDPOINT (https), BERTH_TOKEN, BERTH_SUBSCRIPTION, BERTH_IMAGE (serves /www/index.html).
import json
import os
import time

from azure.core.credentials import AccessToken
from azure.core.rest import HttpRequest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models


class StaticToken:
    """A credential as any program may bring its own: berth's API token."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["BERTH_TOKEN"], int(time.time()) + 3600)


client = ContainerInstanceManagementClient(StaticToken(), os.environ["BERTH_SUBSCRIPTION"], base_url=os.environ["BERTH_ENDPOINT"], polling_interval=0.2)
seen = {"apiVersion": client._config.api_version}
RG, PROFILE, NGROUP = "py-ng", "web", "pyng"


def profile(version):
    return models.ContainerGroupProfile(
        location="local",
        properties=models.ContainerGroupProfileProperties(
            os_type="Linux",
            containers=[
                models.Container(
                    name="web",
                    image=os.environ["BERTH_IMAGE"],
                    command=["httpd", "-f", "-p", "80", "-h", "/www"],
                    ports=[models.ContainerPort(port=80)],
                    environment_variables=[models.EnvironmentVariable(name="VERSION", value=version)],
                    resources=models.ResourceRequirements(requests=models.ResourceRequests(cpu=0.05, memory_in_gb=0.05)),
                    readiness_probe=models.ContainerProbe(exec_property=models.ContainerExec(command=["cat", "/www/index.html"]), period_seconds=1),
                )
            ],
            ip_address=models.IpAddress(type="Private", ports=[models.Port(port=80, protocol="TCP")]),
        ),
    )


def members(ngroup_id):
    """The NGroup's members, each with the profile revision it shows and whether it is ready (running, readiness passing)."""
    out = []
    for g in client.container_groups.list_by_resource_group(RG):
        if (g["properties"].get("orchestratorId") or "").lower() != ngroup_id.lower():
            continue
        views = [c.instance_view for c in g.containers]
        ready = g.provisioning_state == "Succeeded" and all(v and v.current_state and v.current_state.state == "Running" and v.current_state.detail_status == "Ready" for v in views)
        out.append({"name": g.name, "revision": g.container_group_profile.revision if g.container_group_profile else None, "ready": ready, "deleting": g.provisioning_state == "Deleting"})
    return out


p1 = client.cg_profile.create_or_update(RG, PROFILE, profile("1"))
seen["profile"] = {"revision": p1.properties.revision, "type": p1.type}
ngroup = models.NGroup(
    location="local",
    properties=models.NGroupProperties(
        elastic_profile=models.ElasticProfile(desired_count=3, maintain_desired_count=True),
        container_group_profiles=[models.ContainerGroupProfileStub(resource=models.ApiEntityReference(id=p1.id), revision=1)],
        update_profile=models.UpdateProfile(
            update_mode="Rolling",
            rolling_update_profile=models.UpdateProfileRollingUpdateProfile(max_batch_percent=50, max_unhealthy_percent=50, pause_time_between_batches="PT2S"),
        ),
    ),
)
made = client.ngroups.begin_create_or_update(RG, NGROUP, ngroup).result()
seen["created"] = {"provisioningState": made.properties.provisioning_state, "type": made.type, "revisions": sorted(m["revision"] for m in members(made.id))}

for count in (6, 2):
    patch = models.NGroupPatch(properties=models.NGroupProperties(elastic_profile=models.ElasticProfile(desired_count=count)))
    scaled = client.ngroups.begin_update(RG, NGROUP, patch).result()
    deadline = time.time() + 60
    while len([m for m in members(made.id) if not m["deleting"]]) != count and time.time() < deadline:
        time.sleep(0.1)
    seen[f"scaled{count}"] = {"desiredCount": scaled.properties.elastic_profile.desired_count, "members": len([m for m in members(made.id) if not m["deleting"]])}

# wait until the two are ready, then roll to a new revision of the profile
deadline = time.time() + 60
while not (len(members(made.id)) == 2 and all(m["ready"] for m in members(made.id))) and time.time() < deadline:
    time.sleep(0.1)
p2 = client.cg_profile.create_or_update(RG, PROFILE, profile("2"))
seen["newRevision"] = p2.properties.revision
ngroup.properties.elastic_profile.desired_count = 2
ngroup.properties.container_group_profiles[0].revision = p2.properties.revision
poller = client.ngroups.begin_create_or_update(RG, NGROUP, ngroup)
latest = HttpRequest("GET", f"{made.id}/latestRollingUpdate?api-version={client._config.api_version}")
snapshots = []
state = None
deadline = time.time() + 120
while state != "Completed" and time.time() < deadline:
    snapshots.append(members(made.id))
    r = client.send_request(latest)
    state = r.json().get("state") if r.status_code == 200 else None
    time.sleep(0.1)
poller.result()
seen["rollingUpdate"] = client.send_request(latest).json()
seen["snapshots"] = snapshots
seen["final"] = sorted((m["revision"], m["ready"]) for m in members(made.id))
got = client.ngroups.get(RG, NGROUP)
seen["got"] = {"desiredCount": got.properties.elastic_profile.desired_count, "revision": got.properties.container_group_profiles[0].revision, "instanceView": got["properties"]["instanceView"]["readyCount"]}
seen["list"] = [n.name for n in client.ngroups.list()]
seen["listByResourceGroup"] = [n.name for n in client.ngroups.list_by_resource_group(RG)]
seen["revisions"] = [p.properties.revision for p in client.cg_profile.list_all_revisions(RG, PROFILE)]
seen["profileByRevision"] = client.cg_profile.get_by_revision_number(RG, PROFILE, "1").properties.containers[0].environment_variables[0].value

client.ngroups.begin_delete(RG, NGROUP).result()
seen["afterDelete"] = {"ngroups": [n.name for n in client.ngroups.list_by_resource_group(RG)], "members": len(members(made.id))}
client.cg_profile.delete(RG, PROFILE)
seen["profilesAfterDelete"] = [p.name for p in client.cg_profiles.list_by_resource_group(RG)]
print(json.dumps(seen))
