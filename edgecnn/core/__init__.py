"""The shared core: what both sides of the device boundary use, and nothing else of edgecnn.

- errors: the failures the CLI turns into one line and an exit status;
- io: atomic writes, checksums, staged folders;
- contract: the preprocessing contract and its one numpy implementation;
- artifact, metadata (+ metadata_schema.fbs and its generated module): how artifacts carry the contract;
- protocol: the typed, versioned messages that cross the device boundary;
- images: image folders (labelled splits, unlabeled photos); discovery: plugin discovery.

Shipped to devices with the agent (edgecnn.agent): it needs numpy and Pillow (flatbuffers to read or
write TFLite metadata), never TensorFlow or Click, and imports nothing of edgecnn outside this folder.
"""
