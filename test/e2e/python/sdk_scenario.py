# The official Python SDK (azure-mgmt-containerinstance, its default api-version) drives every container group operation against berth.
# Prints one JSON object of what it saw; test/e2e/python-sdk.test.ts checks it. Trusts berth's CA through REQUESTS_CA_BUNDLE.
# Env: BERTH_ENDPOINT (https), BERTH_TOKEN, BERTH_SUBSCRIPTION, BERTH_IMAGE (serves HTTP on 8094, prints "hello from python").
import json
import os
import time

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models


class StaticToken:
    """A credential as any program may bring its own: berth's API token."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["BERTH_TOKEN"], int(time.time()) + 3600)


client = ContainerInstanceManagementClient(StaticToken(), os.environ["BERTH_SUBSCRIPTION"], base_url=os.environ["BERTH_ENDPOINT"], polling_interval=0.2)
groups = client.container_groups
seen = {"apiVersion": client._config.api_version}
RG, NAME = "py-rg", "web"

group = models.ContainerGroup(
    location="local",
    os_type="Linux",
    restart_policy="Always",
    containers=[
        models.Container(
            name="web",
            image=os.environ["BERTH_IMAGE"],
            ports=[models.ContainerPort(port=8094)],
            environment_variables=[models.EnvironmentVariable(name="MODE", value="python"), models.EnvironmentVariable(name="SECRET", secure_value="py-secret-1")],
            resources=models.ResourceRequirements(requests=models.ResourceRequests(cpu=0.5, memory_in_gb=0.25)),
        )
    ],
    ip_address=models.IpAddress(type="Public", ports=[models.Port(port=8094, protocol="TCP")]),
    tags={"team": "py"},
)
created = groups.begin_create_or_update(RG, NAME, group).result()
seen["created"] = {"provisioningState": created.provisioning_state, "state": created.instance_view.state, "ip": created.ip_address.ip}
got = groups.get(RG, NAME)
seen["got"] = {
    "id": got.id, "env": [e.as_dict() for e in got.containers[0].environment_variables], "tags": got.tags,
    "container": got.containers[0].instance_view.current_state.state,
}
seen["list"] = [g.name for g in groups.list()]
seen["listByResourceGroup"] = [g.name for g in groups.list_by_resource_group(RG)]
seen["updatedTags"] = groups.update(RG, NAME, models.Resource(tags={"team": "py", "env": "test"})).tags
seen["logs"] = client.containers.list_logs(RG, NAME, "web", tail=5).content
execd = client.containers.execute_command(RG, NAME, "web", models.ContainerExecRequest(command="/bin/sh", terminal_size=models.ContainerExecRequestTerminalSize(rows=24, cols=80)))
seen["exec"] = {"webSocketUri": execd.web_socket_uri, "hasPassword": bool(execd.password)}
attached = client.containers.attach(RG, NAME, "web")
seen["attach"] = {"webSocketUri": attached.web_socket_uri, "hasPassword": bool(attached.password)}
seen["outbound"] = groups.get_outbound_network_dependencies_endpoints(RG, NAME)

groups.begin_restart(RG, NAME).result()
seen["afterRestart"] = groups.get(RG, NAME).instance_view.state
# stop is synchronous: the very next read shows the group stopped
groups.stop(RG, NAME)
seen["afterStop"] = groups.get(RG, NAME).instance_view.state
groups.begin_start(RG, NAME).result()
seen["afterStart"] = groups.get(RG, NAME).instance_view.state

seen["usage"] = [u.as_dict() for u in client.location.list_usage("local")]
seen["capabilities"] = [c.as_dict() for c in client.location.list_capabilities("local")]
seen["cachedImages"] = [c.image for c in client.location.list_cached_images("local")]
seen["operations"] = [o.name for o in client.operations.list()]
client.subnet_service_association_link.begin_delete(RG, "vnet", "subnet").result()

groups.begin_delete(RG, NAME).result()
try:
    groups.get(RG, NAME)
    seen["afterDelete"] = "still there"
except ResourceNotFoundError as e:
    seen["afterDelete"] = {"status": e.status_code, "code": e.error.code if e.error else None}

# an invalid request reaches the SDK as ARM's error, with berth's code
try:
    groups.begin_create_or_update(RG, "Bad_Name", group).result()
    seen["badName"] = "accepted"
except HttpResponseError as e:
    seen["badName"] = {"status": e.status_code, "code": e.error.code if e.error else None}

print(json.dumps(seen))
