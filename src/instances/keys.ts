// The store keys of the instances service and its hosts: one layout for SQLite and etcd (cluster-design.md).

/** `/groups/{sub}/{rg}/{name}`: the ARM record (GroupRecord). Subscription and resource group in lower case. */
export const groupKey = (sub: string, rg: string, name: string) => `/groups/${sub.toLowerCase()}/${rg.toLowerCase()}/${name}`;
export const groupPrefix = (sub: string, rg?: string) => (rg === undefined ? `/groups/${sub.toLowerCase()}/` : groupKey(sub, rg, ''));
/** Every group record of every subscription. */
export const GROUPS_PREFIX = '/groups/';
/** `/status/{uid}`: the group's status as its host reported it (StoredStatus). */
export const statusKey = (uid: string) => `/status/${uid}`;
export const STATUS_PREFIX = '/status/';
/** `/groupevents/{uid}`: what the control plane tells of a group beside its host's events (placement, moves). */
export const groupEventsKey = (uid: string) => `/groupevents/${uid}`;
export const GROUP_EVENTS_PREFIX = '/groupevents/';
/** `/ops/{id}`: a long-running operation (OperationRecord). */
export const opKey = (id: string) => `/ops/${id}`;
/** `/rgs/{sub}/{rg}`: a resource group (ResourceGroupRecord). */
export const rgKey = (sub: string, rg: string) => `/rgs/${sub.toLowerCase()}/${rg.toLowerCase()}`;
/** `/dnsnames/{fqdn}`: the group holding a name in berth's zone (DnsNameRecord). */
export const dnsNameKey = (fqdn: string) => `/dnsnames/${fqdn}`;
/** `/usage/{sub}/{location}`: what a subscription's groups count against its quotas in a location (Usage). */
export const usageKey = (sub: string, location: string) => `/usage/${sub.toLowerCase()}/${location}`;
/** `/hostports/{host}/{proto}/{port}`: the group publishing a port on a host (PortHolder). */
export const hostPortKey = (host: string, protocol: string, port: number) => `/hostports/${host}/${protocol}/${port}`;

/** `/hosts/{host}`: the host's registration (HostRecord). */
export const hostKey = (host: string) => `/hosts/${host}`;
export const HOSTS_PREFIX = '/hosts/';
/** `/hostleases/{host}`: put on a lease while the host's agent is alive: present = Ready. */
export const hostLeaseKey = (host: string) => `/hostleases/${host}`;
export const HOST_LEASES_PREFIX = '/hostleases/';
/** `/heldports/{host}`: the ports the host keeps for its own sockets where groups' ports are published (HeldPorts), as it reported them. */
export const heldPortsKey = (host: string) => `/heldports/${host}`;
export const HELD_PORTS_PREFIX = '/heldports/';
/** `/hostspecs/{host}/{uid}`: a PlacedSpec, what the host must run for one group. */
export const hostSpecPrefix = (host: string) => `/hostspecs/${host}/`;
export const hostSpecKey = (host: string, uid: string) => `/hostspecs/${host}/${uid}`;
/**
 * `/removing/{host}/{uid}`: a group taken off a host (deleted) whose removal the host has not reported yet
 * (RemovingRecord): written with the spec's delete, gone with the record.
 */
export const removingPrefix = (host: string) => `/removing/${host}/`;
export const removingKey = (host: string, uid: string) => `/removing/${host}/${uid}`;
/** `/cgprofiles/{sub}/{rg}/{name}`: a container group profile (ProfileRecord). Names in lower case: ARM matches them so. */
export const profileKey = (sub: string, rg: string, name: string) => `/cgprofiles/${sub.toLowerCase()}/${rg.toLowerCase()}/${name.toLowerCase()}`;
export const profilePrefix = (sub: string, rg?: string) => (rg === undefined ? `/cgprofiles/${sub.toLowerCase()}/` : profileKey(sub, rg, ''));
/** `/cgprofilerevs/{uid}/{n, ten digits}`: one immutable revision of a profile (RevisionRecord), in order. */
export const profileRevisionPrefix = (uid: string) => `/cgprofilerevs/${uid}/`;
export const profileRevisionKey = (uid: string, n: number) => `${profileRevisionPrefix(uid)}${String(n).padStart(10, '0')}`;
/** `/ngroups/{sub}/{rg}/{name}`: an NGroup (NGroupRecord), names in lower case. */
export const ngroupKey = (sub: string, rg: string, name: string) => `/ngroups/${sub.toLowerCase()}/${rg.toLowerCase()}/${name.toLowerCase()}`;
/** Every NGroup (no subscription), a subscription's, or a resource group's. */
export const ngroupPrefix = (sub?: string, rg?: string) => (sub === undefined ? '/ngroups/' : rg === undefined ? `/ngroups/${sub.toLowerCase()}/` : ngroupKey(sub, rg, ''));
/** `/ngstatus/{uid}`: what the orchestrator reports of an NGroup (NGroupStatus). */
export const ngroupStatusKey = (uid: string) => `/ngstatus/${uid}`;
export const NGROUP_STATUS_PREFIX = '/ngstatus/';
/** `/ngops/{id}`: an NGroup's long-running operation. */
export const ngroupOpKey = (id: string) => `/ngops/${id}`;

/** The layout version of what is stored (see upgrade.ts). */
export const LAYOUT_KEY = '/meta/layout';

/** `/subnets/{cidr}`: the host a subnet of the cluster CIDR is given to (SubnetHolder): one subnet, one host, across replicas. */
export const subnetKey = (cidr: string) => `/subnets/${cidr}`;
export const SUBNETS_PREFIX = '/subnets/';
/** The cluster overlay's settings (OverlaySettings), written by the first replica: every replica uses the same. */
export const CLUSTER_OVERLAY_KEY = '/cluster/overlay';
/** `/segmenttags/{key}`: a network segment's cluster-wide tag (SegmentTag); `/segmenttagnums/{n}`: the segment holding tag n. */
export const segmentTagKey = (segment: string) => `/segmenttags/${segment}`;
export const SEGMENT_TAGS_PREFIX = '/segmenttags/';
export const segmentTagNumberKey = (tag: number) => `/segmenttagnums/${tag}`;

/** `/agentcreds/{host}`: the SHA-256 of the host's agent credential (credentials.ts). */
export const agentCredentialKey = (host: string) => `/agentcreds/${host}`;
export const AGENT_CREDENTIALS_PREFIX = '/agentcreds/';
/** The cluster CA (certificate and key, PEM) every replica serves with and signs agents' certificates with. */
export const CLUSTER_CA_KEY = '/cluster/ca';
/** The Ed25519 key pair that signs data-plane tokens (agents get the public half at join). */
export const CLUSTER_SIGNING_KEY = '/cluster/signing-key';
/** The election whose leader runs the control plane's reconcilers (placement). */
export const RECONCILERS_ELECTION = '/elections/reconcilers/';
/** The election whose leader runs a cluster's in-process NGroup orchestrator (one at a time: two would both act). */
export const ORCHESTRATOR_ELECTION = '/elections/orchestrator/';
