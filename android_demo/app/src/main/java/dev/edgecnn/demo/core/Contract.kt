package dev.edgecnn.demo.core

/**
 * The preprocessing contract (schema `edgecnn.contract/1`), read from the contract.json that
 * `edgecnn bundle` puts in the app's assets. It mirrors `edgecnn/core/contract.py` field for field:
 * the same names, defaults and validation rules, so a contract the Python side refuses is
 * refused here too, with a one-line reason.
 */
class ContractException(message: String) : IllegalArgumentException(message)

/** The element types a model input may have, with their integer range. */
enum class TensorDtype(val id: String, val min: Int, val max: Int, val bytesPerElement: Int) {
    FLOAT32("float32", 0, 0, 4),
    INT8("int8", -128, 127, 1),
    UINT8("uint8", 0, 255, 1);

    val isQuantized: Boolean get() = this != FLOAT32

    companion object {
        fun of(id: String): TensorDtype? = values().firstOrNull { it.id == id }
    }
}

/** An affine quantization: real = (q - zeroPoint) * scale. */
data class Quantization(val scale: Double, val zeroPoint: Int) {
    /** The scale as float32, as numpy's np.float32(scale) rounds it. */
    val scaleF: Float get() = scale.toFloat()
}

class Contract(
    val inputHeight: Int,
    val inputWidth: Int,
    val labels: List<String>,
    val colorOrder: String = "RGB",
    val layout: String = "NHWC",
    val resize: String = "bilinear",
    val mean: List<Double> = listOf(127.5, 127.5, 127.5),
    val std: List<Double> = listOf(127.5, 127.5, 127.5),
    val inputDtype: TensorDtype = TensorDtype.FLOAT32,
    val inputQuantization: Quantization? = null,
    val outputQuantization: Quantization? = null,
    val model: Map<String, Any?> = emptyMap(),
) {
    val numClasses: Int get() = labels.size

    /** (1, height, width, 3): the NHWC input shape a model must have to honour this contract. */
    val inputShape: IntArray get() = intArrayOf(1, inputHeight, inputWidth, 3)

    /** Number of elements of one input tensor. */
    val inputElements: Int get() = inputHeight * inputWidth * 3

    /** Per-channel mean and std as float32, as numpy's np.asarray(..., dtype=float32). */
    val meanF: FloatArray get() = FloatArray(3) { mean[it].toFloat() }
    val stdF: FloatArray get() = FloatArray(3) { std[it].toFloat() }

    /** Validates like Contract.validate in edgecnn/core/contract.py; throws [ContractException]. */
    fun validate(source: String = "contract") {
        fun bad(msg: String): Nothing = throw ContractException("$source: $msg")
        if (minOf(inputHeight, inputWidth) < 8 || maxOf(inputHeight, inputWidth) > MAX_INPUT_SIDE) {
            bad("input_size must be [height, width] of 8 to $MAX_INPUT_SIDE px, got [$inputHeight, $inputWidth]")
        }
        if (labels.size < 2 || labels.size > MAX_LABELS) bad("needs 2 to $MAX_LABELS labels, got ${labels.size}")
        if (labels.toSet().size != labels.size) bad("labels are not unique")
        for (label in labels) {
            val why = labelProblem(label)
            if (why != null) bad("label '${escaped(label.take(40))}' $why")
        }
        if (colorOrder != "RGB") bad("color_order must be RGB, got '$colorOrder'")
        if (layout != "NHWC") bad("layout must be NHWC, got '$layout'")
        if (resize != "bilinear") bad("resize must be one of ('bilinear',), got '$resize'")
        if (mean.size != 3 || std.size != 3) bad("mean and std need 3 values each")
        if (!mean.all { it.isFinite() && Math.abs(it) <= 65535.0 }) {
            bad("mean must be finite numbers within +-65535 (pixel units), got $mean")
        }
        if (!std.all { it.isFinite() && it >= 1e-3 && it <= 65535.0 }) {
            bad("std must be finite numbers from 0.001 to 65535 (pixel units), got $std")
        }
        if (inputDtype != TensorDtype.FLOAT32 && inputQuantization == null) {
            bad("input_dtype ${inputDtype.id} needs input_quantization (scale, zero_point)")
        }
        for ((name, q) in listOf("input" to inputQuantization, "output" to outputQuantization)) {
            if (q != null && !(q.scale > 0.0 && q.scale.isFinite())) bad("${name}_quantization.scale must be a positive number")
        }
        for (key in listOf("arch", "recipe")) {
            if (model.containsKey(key) && model[key] !is String) bad("model.$key must be a string, got ${pyRepr(model[key])}")
        }
    }

    /**
     * Why a model with these tensors cannot be run by this contract (empty when it can).
     * [inputQuant] and [outputQuant] are the model's own quantization parameters, if any.
     */
    fun mismatches(
        inputShape: IntArray,
        inputDtype: TensorDtype?,
        inputQuant: Quantization?,
        outputElements: Int,
        outputDtype: TensorDtype?,
        outputQuant: Quantization?,
    ): List<String> {
        val out = ArrayList<String>()
        if (!inputShape.contentEquals(this.inputShape)) {
            out += "model input shape ${inputShape.contentToString()} but the contract says ${this.inputShape.contentToString()} (NHWC)"
        }
        if (inputDtype != this.inputDtype) {
            out += "model input type ${inputDtype?.id ?: "unsupported"} but the contract says ${this.inputDtype.id}"
        } else if (inputDtype.isQuantized) {
            val c = inputQuantization!!
            if (inputQuant == null || !sameScale(inputQuant.scale, c.scale) || inputQuant.zeroPoint != c.zeroPoint) {
                out += "model input quantization ${describe(inputQuant)} but the contract says ${describe(c)}"
            }
        }
        if (outputElements != numClasses) {
            out += "model output has $outputElements values but the contract has $numClasses labels"
        }
        when {
            outputDtype == null -> out += "model output type is not float32, int8 or uint8"
            outputDtype.isQuantized && outputQuantization == null && outputQuant == null ->
                out += "model output is ${outputDtype.id} but neither the contract nor the model gives its quantization"
            outputDtype.isQuantized && outputQuantization != null && outputQuant != null &&
                (!sameScale(outputQuant.scale, outputQuantization.scale) || outputQuant.zeroPoint != outputQuantization.zeroPoint) ->
                out += "model output quantization ${describe(outputQuant)} but the contract says ${describe(outputQuantization)}"
        }
        return out
    }

    companion object {
        const val SCHEMA = "edgecnn.contract/1"
        const val MAX_INPUT_SIDE = 4096
        const val MAX_LABELS = 10_000
        const val MAX_LABEL_CHARS = 200

        /** Control characters written as Python's repr writes them, so an error stays one line. */
        private fun escaped(text: String): String = buildString {
            for (ch in text) {
                when {
                    ch == '\n' -> append("\\n")
                    ch == '\t' -> append("\\t")
                    ch == '\r' -> append("\\r")
                    ch.code < 32 || ch.code == 127 -> append("\\x%02x".format(ch.code))
                    else -> append(ch)
                }
            }
        }

        /** Why a label cannot name a class folder, a file or a line of labels.txt (null when it can). */
        fun labelProblem(label: String): String? = when {
            label.isEmpty() || label != label.trim() -> "is empty or has leading/trailing spaces"
            label.codePointCount(0, label.length) > MAX_LABEL_CHARS -> "is longer than $MAX_LABEL_CHARS characters"
            label == "." || label == ".." || '/' in label || '\\' in label -> "contains a path separator or is . or .."
            label.any { it.code < 32 || it.code == 127 } -> "contains a control character"
            else -> null
        }
        private val KNOWN = setOf(
            "schema", "input_size", "labels", "color_order", "layout", "resize", "mean", "std",
            "input_dtype", "input_quantization", "output_quantization", "model",
            "provenance",  // which model.keras and recipe the artifact came from: read by the host tools only
        )

        private fun sameScale(a: Double, b: Double) = Math.abs(a - b) <= 1e-6 * maxOf(Math.abs(a), Math.abs(b))

        private fun describe(q: Quantization?) = if (q == null) "none" else "(scale ${q.scale}, zero point ${q.zeroPoint})"

        /** Parses contract.json text; throws [ContractException] with one clear line. */
        fun parse(text: String, source: String = "contract.json"): Contract {
            val root = try {
                Json.parse(text)
            } catch (e: JsonException) {
                throw ContractException("$source: not valid JSON (${e.message})")
            }
            return fromMap(root, source)
        }

        fun fromMap(root: Any?, source: String = "contract"): Contract {
            fun bad(msg: String): Nothing = throw ContractException("$source: $msg")
            val d = root as? Map<*, *> ?: bad("not a JSON object")
            val schema = d["schema"]
            if (schema != SCHEMA) bad("schema is ${pyRepr(schema)}, expected '$SCHEMA'")
            val unknown = d.keys.map { it.toString() }.filter { it !in KNOWN }.sorted()
            if (unknown.isNotEmpty()) bad("unknown field(s) ${unknown.joinToString(", ")}")

            fun malformed(field: String, why: String): Nothing = bad("malformed field $field ($why)")
            fun number(field: String, v: Any?): Double =
                (v as? JsonNumber)?.toDouble() ?: malformed(field, "expected a number, got ${pyRepr(v)}")
            fun integer(field: String, v: Any?): Int =
                (v as? JsonNumber)?.toIntOrNull() ?: malformed(field, "expected an integer, got ${pyRepr(v)}")
            fun list(field: String, v: Any?): List<*> = v as? List<*> ?: malformed(field, "expected a list, got ${pyRepr(v)}")
            fun string(field: String, default: String): String {
                if (!d.containsKey(field)) return default
                return d[field] as? String ?: malformed(field, "expected a string, got ${pyRepr(d[field])}")
            }
            fun quant(field: String): Quantization? {
                val v = d[field] ?: return null
                val m = v as? Map<*, *> ?: malformed(field, "expected an object with scale and zero_point")
                if (!m.containsKey("scale") || !m.containsKey("zero_point")) malformed(field, "needs scale and zero_point")
                return Quantization(number("$field.scale", m["scale"]), integer("$field.zero_point", m["zero_point"]))
            }

            if (!d.containsKey("input_size")) malformed("input_size", "missing")
            if (!d.containsKey("labels")) malformed("labels", "missing")
            val size = list("input_size", d["input_size"]).map { integer("input_size", it) }
            if (size.size != 2) bad("input_size must be [height, width] of at least 8 px, got $size")
            val labels = list("labels", d["labels"]).map { it as? String ?: malformed("labels", "expected strings, got ${pyRepr(it)}") }
            val mean = if (d.containsKey("mean")) list("mean", d["mean"]).map { number("mean", it) } else listOf(127.5, 127.5, 127.5)
            val std = if (d.containsKey("std")) list("std", d["std"]).map { number("std", it) } else listOf(127.5, 127.5, 127.5)
            val dtypeId = string("input_dtype", "float32")
            val dtype = TensorDtype.of(dtypeId)
                ?: bad("input_dtype must be one of ('float32', 'int8', 'uint8'), got '$dtypeId'")
            @Suppress("UNCHECKED_CAST")
            val model = when (val m = d["model"]) {
                null -> emptyMap()
                is Map<*, *> -> m as Map<String, Any?>
                else -> malformed("model", "expected an object")
            }
            val c = Contract(
                inputHeight = size[0],
                inputWidth = size[1],
                labels = labels,
                colorOrder = string("color_order", "RGB"),
                layout = string("layout", "NHWC"),
                resize = string("resize", "bilinear"),
                mean = mean,
                std = std,
                inputDtype = dtype,
                inputQuantization = quant("input_quantization"),
                outputQuantization = quant("output_quantization"),
                model = model,
            )
            c.validate(source)
            return c
        }

        private fun pyRepr(v: Any?): String = when (v) {
            null -> "None"
            is String -> "'$v'"
            else -> v.toString()
        }
    }
}

/** labels.txt: one label per line (a trailing newline is not an extra label). */
fun parseLabels(text: String): List<String> {
    val lines = text.replace("\r\n", "\n").split("\n")
    return if (lines.isNotEmpty() && lines.last().isEmpty()) lines.dropLast(1) else lines
}
