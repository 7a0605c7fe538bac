"""`python -m vlsteps.serve [--host 127.0.0.1] [--port 5000] [--runtime auto|torch|onnx] [--adapter KEY=PATH ...]`:
run the service with uvicorn."""
from __future__ import annotations

import argparse
import dataclasses
import logging

from .. import paths
from ..checkpoint import ModelNotFoundError
from ..finetune.merge import AdapterError
from .settings import RUNTIMES, Settings, adapter_entry


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vlsteps.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine "
                                                            "only; 0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--runtime", choices=RUNTIMES, help="what CLIP runs on: onnx (ONNX Runtime, faster on a CPU), "
                                                             "torch, or auto: onnx without CUDA, else torch; default "
                                                             "VLSTEPS_SERVE_RUNTIME, else auto")
    parser.add_argument("--adapter", action="append", default=[], metavar="KEY=PATH",
                        help="merge the LoRA adapter saved in folder PATH (PeftModel.save_pretrained) into caption "
                             "model KEY when the service starts; repeatable; adds to VLSTEPS_SERVE_ADAPTERS")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        adapters = {**settings.adapters, **dict(map(adapter_entry, args.adapter))}
    except ValueError as e:
        parser.error(str(e))
    settings = dataclasses.replace(settings, runtime=args.runtime or settings.runtime, adapters=adapters)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("vlsteps.serve")
    if paths.standins_allowed():
        log.warning("STAND-INS ALLOWED (VLSTEPS_STANDINS=1): models without a real checkpoint in %s run as tiny "
                    "copies, trained here on scenes of coloured shapes or random. /api/v1/status says which.",
                    paths.models_dir())
    import uvicorn

    from .app import create_app
    try:
        app = create_app(settings)
    # --runtime onnx without onnxruntime: what to install; an --adapter that does not fit, or whose model is missing
    except (ImportError, AdapterError, ModelNotFoundError) as e:
        parser.error(str(e))
    log.info("serving on http://%s:%d (docs at /docs); CLIP on %s (%s)", args.host, args.port,
             app.state.threads["runtime"], app.state.threads["runtime_chosen_by"])
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
