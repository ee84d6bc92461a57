package dev.edgecnn.demo.jvmcheck

import dev.edgecnn.demo.core.Contract
import dev.edgecnn.demo.core.ContractException
import dev.edgecnn.demo.core.ModelFiles
import dev.edgecnn.demo.core.Preprocessor
import dev.edgecnn.demo.core.RgbImage
import dev.edgecnn.demo.core.TensorDtype
import dev.edgecnn.demo.core.TopK
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.system.exitProcess

/**
 * Runs the app's pure-Kotlin core on the JVM, so the Python tests can compare it with
 * edgecnn/core/contract.py byte for byte (tests/test_android.py). One JVM start serves many jobs:
 *
 *     java -jar core-check.jar JOBS.tsv
 *
 * Each line of JOBS.tsv is a tab-separated job:
 *
 *     contract    CONTRACT.json OUT.json          parsed contract (or {"error": ...}) as JSON
 *     embedded    MODEL.tflite OUT.json           the contract the model carries (ModelFiles), as above
 *     preprocess  CONTRACT.json RGB.raw W H OUT   model input bytes (float32 little-endian, or int8/uint8)
 *     topk        CONTRACT.json SCORES DTYPE K OUT  "index<TAB>float32 bits (hex)" lines
 *     rotate      RGB.raw W H DEGREES OUT         the image turned clockwise, as raw RGB
 *     rgba        RGBA.raw W H ROWSTRIDE PIXELSTRIDE OUT   RGB from a padded RGBA buffer
 *
 * RGB.raw is the decoded HxWx3 uint8 image (what edgecnn.core.contract.load_image returns).
 */
fun main(args: Array<String>) {
    if (args.size != 1) {
        System.err.println("usage: core-check JOBS.tsv")
        exitProcess(2)
    }
    var n = 0
    for ((lineNo, line) in File(args[0]).readLines().withIndex()) {
        if (line.isBlank()) continue
        val f = line.split('\t')
        try {
            when (f[0]) {
                "contract" -> contractJob(File(f[2])) { Contract.parse(File(f[1]).readText(Charsets.UTF_8), File(f[1]).name) }
                "embedded" -> contractJob(File(f[2])) { ModelFiles.contract(File(f[1])) }
                "preprocess" -> preprocessJob(load(File(f[1])), File(f[2]), f[3].toInt(), f[4].toInt(), File(f[5]))
                "topk" -> topkJob(load(File(f[1])), File(f[2]), f[3], f[4].toInt(), File(f[5]))
                "rotate" -> File(f[5]).writeBytes(rgb(File(f[1]), f[2].toInt(), f[3].toInt()).rotatedClockwise(f[4].toInt()).pixels)
                "rgba" -> File(f[6]).writeBytes(
                    RgbImage.fromRgba(File(f[1]).readBytes(), f[2].toInt(), f[3].toInt(), f[4].toInt(), f[5].toInt()).pixels,
                )
                else -> throw IllegalArgumentException("unknown job '${f[0]}'")
            }
            n++
        } catch (e: Exception) {
            System.err.println("job ${lineNo + 1} (${f[0]}) failed: ${e.javaClass.simpleName}: ${e.message}")
            exitProcess(1)
        }
    }
    println("core-check: $n jobs done")
}

private fun load(f: File): Contract = Contract.parse(f.readText(Charsets.UTF_8), f.name)

private fun rgb(f: File, w: Int, h: Int) = RgbImage(w, h, f.readBytes())

private fun preprocessJob(c: Contract, raw: File, w: Int, h: Int, out: File) {
    val buf = ByteBuffer.allocate(c.inputElements * c.inputDtype.bytesPerElement).order(ByteOrder.LITTLE_ENDIAN)
    Preprocessor(c).write(rgb(raw, w, h), buf)
    out.writeBytes(buf.array())
}

private fun topkJob(c: Contract, scores: File, dtypeId: String, k: Int, out: File) {
    val dtype = TensorDtype.of(dtypeId) ?: throw IllegalArgumentException("dtype $dtypeId")
    val raw = scores.readBytes()
    val values = if (dtype == TensorDtype.FLOAT32) {
        val fb = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        FloatArray(fb.remaining()).also { fb.get(it) }
    } else {
        TopK.dequantize(raw, dtype, c.outputQuantization)
    }
    val text = StringBuilder()
    for (p in TopK.predictions(values, c.labels, k)) {
        text.append(p.index).append('\t').append(String.format("%08x", java.lang.Float.floatToRawIntBits(p.score)))
            .append('\t').append(p.label).append('\n')
    }
    out.writeText(text.toString(), Charsets.UTF_8)
}

private fun contractJob(out: File, read: () -> Contract) {
    val json = try {
        val c = read()
        fun bits(f: Float) = "\"" + String.format("%08x", java.lang.Float.floatToRawIntBits(f)) + "\""
        fun q(q: dev.edgecnn.demo.core.Quantization?) =
            if (q == null) "null" else "{\"scale\": ${q.scale}, \"zero_point\": ${q.zeroPoint}, \"scale_f32\": ${bits(q.scaleF)}}"
        buildString {
            append("{\"input_size\": [${c.inputHeight}, ${c.inputWidth}]")
            append(", \"labels\": [").append(c.labels.joinToString(", ") { str(it) }).append("]")
            append(", \"color_order\": ${str(c.colorOrder)}, \"layout\": ${str(c.layout)}, \"resize\": ${str(c.resize)}")
            append(", \"mean\": ${c.mean}, \"std\": ${c.std}")
            append(", \"mean_f32\": [${c.meanF.joinToString(", ") { bits(it) }}]")
            append(", \"std_f32\": [${c.stdF.joinToString(", ") { bits(it) }}]")
            append(", \"input_dtype\": ${str(c.inputDtype.id)}")
            append(", \"input_quantization\": ${q(c.inputQuantization)}")
            append(", \"output_quantization\": ${q(c.outputQuantization)}")
            append(", \"model_keys\": [").append(c.model.keys.joinToString(", ") { str(it) }).append("]}")
        }
    } catch (e: ContractException) {
        "{\"error\": ${str(e.message ?: "")}}"
    }
    out.writeText(json + "\n", Charsets.UTF_8)
}

/** A JSON string literal, non-ASCII escaped. */
private fun str(s: String): String {
    val b = StringBuilder("\"")
    for (ch in s) {
        when {
            ch == '"' -> b.append("\\\"")
            ch == '\\' -> b.append("\\\\")
            ch < ' ' || ch > '~' -> b.append(String.format("\\u%04x", ch.code))
            else -> b.append(ch)
        }
    }
    return b.append('"').toString()
}
