package dev.edgecnn.demo.core

import java.io.ByteArrayOutputStream
import java.io.File
import java.io.IOException
import java.util.zip.ZipException
import java.util.zip.ZipFile

/**
 * The associated files a .tflite carries in the standard way of TFLite Model Metadata: an
 * uncompressed ZIP appended to the flatbuffer, listed by the metadata (what LiteRT's
 * MetadataExtractor and MediaPipe read). java.util.zip finds the archive from the end of the file,
 * so the flatbuffer in front of it is no obstacle. edgecnn models carry `contract.json` (the
 * preprocessing contract) and `labels.txt` (the output's TENSOR_AXIS_LABELS file).
 */
object ModelFiles {
    const val CONTRACT = "contract.json"
    const val LABELS = "labels.txt"
    const val MAX_BYTES = 2 * 1024 * 1024   // far above a real contract or label list

    /** The named associated file, or null when the model has no archive or no such file. */
    fun read(model: File, name: String, limit: Int = MAX_BYTES): ByteArray? {
        val zip = try {
            ZipFile(model)
        } catch (e: ZipException) {
            return null                     // a bare flatbuffer: no associated files
        }
        zip.use { z ->
            val entry = z.getEntry(name) ?: return null
            if (entry.size > limit) throw ContractException("${model.name}: $name is ${entry.size} bytes, more than $limit")
            return try {
                z.getInputStream(entry).use { input ->
                    val out = ByteArrayOutputStream()
                    val buf = ByteArray(64 * 1024)
                    while (true) {
                        val n = input.read(buf)
                        if (n < 0) break
                        out.write(buf, 0, n)
                        if (out.size() > limit) throw ContractException("${model.name}: $name is more than $limit bytes")
                    }
                    out.toByteArray()
                }
            } catch (e: IOException) {
                throw ContractException("${model.name}: $name cannot be read (${e.message})")
            }
        }
    }

    /** The contract the model carries; its labels.txt, when present, must list the same labels. */
    fun contract(model: File): Contract {
        val text = read(model, CONTRACT)
            ?: throw ContractException("${model.name} carries no $CONTRACT: export it with 'edgecnn export'")
        val c = Contract.parse(text.toString(Charsets.UTF_8), "$CONTRACT in ${model.name}")
        val labels = read(model, LABELS)?.let { parseLabels(it.toString(Charsets.UTF_8)) }
        if (labels != null && labels != c.labels) {
            throw ContractException("${model.name}: $LABELS (${labels.size} labels) does not match $CONTRACT (${c.labels.size} labels)")
        }
        return c
    }
}
