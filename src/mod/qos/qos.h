/* QoS for web meetings: which policy of qos.policies a request falls under,
 * and marking a connection's socket with that policy's DSCP value and rate.
 *
 * The documented product leaves this to Windows policy-based QoS on the web
 * server; atriumd does it itself for the traffic it sends in answer to a
 * request. The matcher is pure; qos_apply_fd only makes setsockopt calls.
 * Neither logs. See docs/operations/qos.md. */
#pragma once

#include <jansson.h>

#include "mod/module.h"

extern const atrium_module_t qos_module;

/* The first policy of `policies` (the validated value of qos.policies: an
 * array of {"name", "dscp", "max_rate_mbps", "url", "include_subdirectories",
 * "any_destination"}) whose URL matches the request, or NULL. Borrowed from
 * `policies`.
 *
 * scheme: "http" or "https" as the client used it (NULL: "http"). host: the
 * authority the client asked for, "host", "host:port", "[v6]" or "[v6]:port"
 * (NULL: none; then only a host pattern of "*" matches). path: the decoded
 * request path, starting with '/'.
 *
 * A policy URL is scheme://host[:port]/path; '*' in it matches any run of
 * characters (in the path '/' included). The scheme and host compare without
 * regard to case, the path with. A port in the policy must equal the
 * request's port (the scheme's default when the request names none); no
 * port, or ":*", matches any. The path matches exactly (a trailing '/' is not
 * significant), or with include_subdirectories also every path below it at a
 * '/' boundary ("/webmeeting" covers "/webmeeting/ws", not "/webmeetings").
 * %XX escapes in the policy's path are decoded first, as the request path is.
 * A query in the policy URL is ignored. any_destination is not consulted: see
 * docs/operations/qos.md. */
const json_t *qos_match(const json_t *policies, const char *scheme, const char *host,
                        const char *path);

/* Marks the connected socket `fd` (family AF_INET or AF_INET6): DSCP `dscp`
 * (0-63; 0 clears the mark) in IP_TOS, and for AF_INET6 also IPV6_TCLASS
 * (IPv4-mapped peers of a dual-stack socket use the former); sending rate at
 * most `max_rate_mbps` Mbit/s (SO_MAX_PACING_RATE; <= 0: unlimited). Linux
 * paces TCP itself when the qdisc does not, so the limit holds without fq.
 * Returns 0 or the first failing call's negative errno (-EINVAL for a dscp
 * out of range or an unknown family). */
int qos_apply_fd(int fd, int family, int dscp, long max_rate_mbps);
