"""The agent: everything that runs where the model runs (host, board, emulated phone), as one
subpackage shipped whole to a device. It needs numpy, Pillow and one runtime; never TensorFlow,
Click or anything else of edgecnn outside this folder.

- protocol: the typed request/result messages that cross the boundary;
- run: the agent program; timing: latency and memory measurement;
- contract, artifact, images: the preprocessing contract, how artifacts carry it, image folders;
- runtimes/: one runner per engine; tensorrt_build: engines built on the target.
"""
