"""The agent: what runs where the model runs (host, board, emulated phone), shipped to a device as one
zip with edgecnn.core. It needs numpy, Pillow and one runtime; never TensorFlow, Click or anything
of edgecnn outside this folder and core/.

- run: the agent program (``python -m edgecnn.agent``); timing: latency and memory measurement;
- runtimes/: one runner per engine; tensorrt_build: engines built on the target.
"""
