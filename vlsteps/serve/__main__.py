"""`python -m vlsteps.serve [--host 127.0.0.1] [--port 5000]`: run the service with uvicorn."""
from __future__ import annotations

import argparse
import logging

from .. import paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vlsteps.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine "
                                                            "only; 0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("vlsteps.serve")
    if paths.standins_allowed():
        log.warning("STAND-INS ALLOWED (VLSTEPS_STANDINS=1): models without a real checkpoint in %s run as tiny "
                    "copies, trained here on scenes of coloured shapes or random. /api/v1/status says which.",
                    paths.models_dir())
    import uvicorn

    from .app import create_app
    log.info("serving on http://%s:%d (docs at /docs)", args.host, args.port)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
