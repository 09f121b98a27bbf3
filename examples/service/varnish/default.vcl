# Varnish in front of the example service: it keeps what `CDN-Cache-Control` (RFC 9213)
# allows, for as long as it says, and drops objects by surrogate key (the xkey module of
# varnish-modules) when the service purges them: the service sends each response's tags
# in `xkey` or `Surrogate-Key` (`CDN_TAG_HEADERS`) and, with `VARNISH_PURGE_NODES` naming
# this node, a `PURGE` carrying `xkey-purge: <key>` after every write.
#
# Varnish 6 or 7 with varnish-modules (Debian: `apt-get install varnish varnish-modules`).
# Set the backend to the service and the ACL to the hosts it runs on; tests/varnish.rs
# runs this file with its own backend port.
vcl 4.1;

import std;
import xkey;

backend default {
    .host = "127.0.0.1";
    .port = "3000";
}

# Who may purge: the service's instances, never clients.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-purge-all) {
            # `CacheHandle::purge`: everything (a ban, tested lazily against each object).
            ban("obj.status != 0");
            return (synth(200, "Banned every object"));
        }
        if (req.http.xkey-softpurge) {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        } else if (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        } else {
            return (synth(400, "No xkey-purge field"));
        }
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
}

sub vcl_backend_response {
    # CDN-Cache-Control is this cache's field and takes precedence over Cache-Control
    # (RFC 9213 §2.1): `private` or `no-store` there keeps the response out, `max-age`
    # is the TTL. (A full Structured Field parser is more than VCL offers; these regular
    # expressions read what the service sends.)
    if (beresp.http.CDN-Cache-Control ~ "(^|,)\s*(private|no-store)\s*(,|$)") {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    if (beresp.http.CDN-Cache-Control ~ "(^|,)\s*max-age=[0-9]+\s*(,|$)") {
        set beresp.ttl = std.duration(
            regsub(beresp.http.CDN-Cache-Control, "^(.*,)?\s*max-age=([0-9]+).*$", "\2") + "s",
            0s);
    }
    # The keys xkey indexes: from Surrogate-Key when the service sends only that.
    if (!beresp.http.xkey && beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
}

sub vcl_deliver {
    # The keys are for this cache, not for clients.
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
}
