/* `corral-launch canary`: a short-lived process that joins a container's cgroup (v2) and
 * network namespace and tries what a policy forbids, to prove the kernel refuses it. */
#ifndef CORRAL_CANARY_H
#define CORRAL_CANARY_H

int cmd_canary(int argc, char **argv);

#endif
