#!/usr/bin/python3
"""Helper for start.sh, run with /usr/bin/python3 (the Debian swift is not
importable from a pyenv python3).

  launch.py rings SWIFT_DIR account=PORT container=PORT object=PORT
      Build single-replica rings (part power 8, one device "d1" on 127.0.0.1)
      through the RingBuilder API: ~10x faster than one swift-ring-builder
      process per step.
  launch.py serve SWIFT_DIR CONF SECTION LOGFILE
      Run one Swift WSGI server in the foreground (workers = 0 in CONF).

Swift reads swift.conf from the fixed path /etc/swift/swift.conf and logs to
syslog (/dev/log); both are redirected here into SWIFT_DIR / LOGFILE, so the
test Swift never touches /etc/swift nor needs a syslog daemon.
"""
import logging
import os
import sys
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the repo's tests/swift


def redirect_swift_conf(swift_dir):
    # Must happen before swift.common.storage_policy / constraints are imported:
    # they parse utils.SWIFT_CONF_FILE at import time.
    from swift.common import utils
    utils.SWIFT_CONF_FILE = os.path.join(swift_dir, 'swift.conf')
    return utils


def build_rings(swift_dir, specs):
    redirect_swift_conf(swift_dir)
    from swift.common.ring import RingBuilder
    for spec in specs:
        kind, port = spec.split('=')
        builder = RingBuilder(8, 1, 1)  # part power 8, 1 replica, min_part_hours 1
        builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1',
                         'port': int(port), 'device': 'd1', 'weight': 1.0, 'meta': ''})
        builder.rebalance()
        builder.get_ring().save(os.path.join(swift_dir, '%s.ring.gz' % kind))


def serve(swift_dir, conf, section, logfile):
    utils = redirect_swift_conf(swift_dir)

    class FileLogHandler(logging.FileHandler):
        """Stands in for swift's syslog handler. Opened on its own fd (append
        mode), so it survives run_wsgi's capture_stdio(), which points fds 0-2
        at /dev/null."""
        def __init__(self, *args, **kwargs):
            super().__init__(logfile, mode='a')

        def format(self, record):
            return time.strftime('%H:%M:%S ') + super().format(record)

    utils.ThreadSafeSysLogHandler = FileLogHandler
    # The containerkeys filter is loaded by module path (paste.filter_factory).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    from swift.common.wsgi import run_wsgi
    kwargs = {}
    if section == 'object-server':  # as /usr/bin/swift-object-server does
        from swift.obj import server
        kwargs['global_conf_callback'] = server.global_conf_callback
    return run_wsgi(conf, section, **kwargs)


if __name__ == '__main__':
    if sys.argv[1:2] == ['rings']:
        build_rings(sys.argv[2], sys.argv[3:])
    elif sys.argv[1:2] == ['serve'] and len(sys.argv) == 6:
        sys.exit(serve(*sys.argv[2:]))
    else:
        sys.exit(__doc__)
