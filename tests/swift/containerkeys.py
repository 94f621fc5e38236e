# Python 3 "container keys" paste filter for the swiftdup test Swift.
#
# Re-implements (not copies) the provider's container-keys protocol, as written
# down in shared/swift-notes.md:
#   * a request WITHOUT X-Auth-Token that carries X-Container-Meta-Full-Key or
#     X-Container-Meta-Read-Key is checked, in constant time, against the
#     container's metadata keys full-key, full-key-1..N / read-key, read-key-1..N
#     (N = max_keys_per_container, default 3);
#   * match: the request is authorized (swift.authorize_override + an allow
#     function in swift.authorize, scoped to that one container);
#   * read keys cannot write (PUT/POST/DELETE/COPY);
#   * wrong key: 401 "401 Unauthorized: Auth Key invalid";
#   * no key header, an X-Auth-Token, a container without keys, or a request
#     that is not about one container (account level, /info, /auth): passed on
#     untouched to the normal auth middleware, which answers 401/403 itself.
#
# Pipeline: after `cache` (get_container_info uses memcache) and BEFORE tempauth:
# tempauth is the definitive auth for AUTH_ accounts and, for a tokenless
# request, installs a denying swift.authorize unless swift.authorize_override
# is already set when the request reaches it.
import hmac

from swift.common.constraints import valid_api_version
from swift.common.swob import HTTPUnauthorized, wsgi_to_bytes
from swift.common.utils import get_logger, register_swift_info, split_path
from swift.proxy.controllers.base import get_container_info

FULL, READ = 'full-key', 'read-key'
# WSGI environ names of the request headers X-Container-Meta-{Full,Read}-Key.
HEADERS = {FULL: 'HTTP_X_CONTAINER_META_FULL_KEY',
           READ: 'HTTP_X_CONTAINER_META_READ_KEY'}
READ_ONLY_REFUSED = ('PUT', 'POST', 'DELETE', 'COPY')
DEFAULT_MAX_KEYS = 3
INVALID_BODY = b'401 Unauthorized: Auth Key invalid\n'


# Request header values and container metadata are different string types on
# Python 3: environ values are "WSGI strings" (the raw header bytes decoded as
# Latin-1), while get_container_info's metadata is native str (decoded UTF-8).
# Compare both as the UTF-8 bytes the client sent.
def _header_bytes(value):
    return wsgi_to_bytes(value)


def _meta_bytes(value):
    return value.encode('utf-8')


def container_keys(meta, max_keys):
    """{FULL: [bytes...], READ: [bytes...]} from container metadata (lowercase names)."""
    keys = {FULL: [], READ: []}
    for kind in (FULL, READ):
        names = [kind] + ['%s-%d' % (kind, i) for i in range(1, max_keys + 1)]
        for name, value in meta.items():
            if name.lower() in names and value:
                keys[kind].append(_meta_bytes(value))
    return keys


def key_matches(candidate, keys):
    # Compare against every stored key (no early exit) so timing reveals nothing.
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def _container_of(path):
    """(version, account, container) of /v1/a/c[/o], or None for anything else."""
    try:
        version, account, container, _ = split_path(path, 1, 4, True)
    except ValueError:
        return None
    if not valid_api_version(version) or not account or not container:
        return None
    return version, account, container


class ContainerKeys(object):
    def __init__(self, app, conf):
        self.app = app
        self.max_keys = int(conf.get('max_keys_per_container', DEFAULT_MAX_KEYS))
        self.logger = get_logger(conf, log_route='containerkeys')

    def __call__(self, env, start_response):
        # A token means normal auth; the client must never send both.
        if env.get('HTTP_X_AUTH_TOKEN') or env.get('HTTP_X_STORAGE_TOKEN'):
            return self.app(env, start_response)
        # Full key wins if a client sends both headers (as the original does).
        kind = FULL if env.get(HEADERS[FULL]) else READ if env.get(HEADERS[READ]) else None
        if kind is None:
            return self.app(env, start_response)
        target = _container_of(env.get('PATH_INFO', ''))
        if target is None:
            # Account level (list/create containers, bulk delete), /info, /auth:
            # a key is scoped to one container, so leave it to normal auth.
            return self.app(env, start_response)

        info = get_container_info(env, self.app, swift_source='CK')
        keys = container_keys(info.get('meta') or {}, self.max_keys)
        if not keys[FULL] and not keys[READ]:
            # No keys on the container (or no container): normal auth decides.
            return self.app(env, start_response)

        candidate = _header_bytes(env[HEADERS[kind]])
        if not key_matches(candidate, keys[kind]):
            self.logger.info('containerkeys: invalid %s for %s', kind, env['PATH_INFO'])
            return self._invalid(env, start_response)
        if kind == READ and env['REQUEST_METHOD'] in READ_ONLY_REFUSED:
            # Same answer as the provider's middleware: 401, "Auth Key invalid".
            return self._invalid(env, start_response)

        env['swift.authorize_override'] = True
        env['swift.authorize'] = self._allow(target, kind)
        return self.app(env, start_response)

    @staticmethod
    def _allow(target, kind):
        """swift.authorize hook: allow only this container (and read-only for
        read keys), so e.g. PUT + X-Copy-From cannot read another container."""
        def authorize(req):
            if _container_of(req.environ.get('PATH_INFO', '')) != target or (
                    kind == READ and req.method in READ_ONLY_REFUSED):
                return HTTPUnauthorized(request=req)
            return None
        return authorize

    @staticmethod
    def _invalid(env, start_response):
        body = None if env['REQUEST_METHOD'] == 'HEAD' else INVALID_BODY
        return HTTPUnauthorized(body=body, content_type='text/plain')(env, start_response)


def filter_factory(global_conf, **local_conf):
    conf = dict(global_conf, **local_conf)
    register_swift_info(
        'containerkeys',
        max_keys_per_container=int(conf.get('max_keys_per_container', DEFAULT_MAX_KEYS)))
    return lambda app: ContainerKeys(app, conf)
