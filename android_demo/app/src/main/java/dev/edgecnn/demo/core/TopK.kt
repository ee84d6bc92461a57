package dev.edgecnn.demo.core

/** One entry of a top-k list: the class index, its label and its (dequantized) score. */
data class Prediction(val index: Int, val label: String, val score: Float)

object TopK {
    /**
     * Scores of one raw output tensor as float32: float outputs as they are, int8/uint8 outputs
     * as `(q - zero_point) * scale` in float32 (edgecnn.core.contract.dequantize).
     */
    fun dequantize(raw: ByteArray, dtype: TensorDtype, q: Quantization?): FloatArray {
        require(dtype.isQuantized) { "dequantize(ByteArray) is for int8/uint8 outputs, got ${dtype.id}" }
        val unsigned = dtype == TensorDtype.UINT8
        if (q == null) return FloatArray(raw.size) { if (unsigned) (raw[it].toInt() and 0xFF).toFloat() else raw[it].toFloat() }
        val zp = q.zeroPoint.toFloat()
        val scale = q.scaleF
        return FloatArray(raw.size) {
            val v = if (unsigned) raw[it].toInt() and 0xFF else raw[it].toInt()
            (v.toFloat() - zp) * scale
        }
    }

    /**
     * The [k] best (index, score) pairs, highest first; equal scores go to the lower index and
     * NaN ranks last: the rule of edgecnn.core.contract.topk (a stable argsort of -scores).
     */
    fun indices(scores: FloatArray, k: Int): List<Pair<Int, Float>> {
        val n = minOf(maxOf(k, 0), scores.size)
        val taken = BooleanArray(scores.size)
        val out = ArrayList<Pair<Int, Float>>(n)
        repeat(n) {
            var best = -1
            for (i in scores.indices) {
                if (taken[i]) continue
                if (best < 0 || ranksBefore(scores[i], scores[best])) best = i // ties keep the lower index
            }
            taken[best] = true
            out += best to scores[best]
        }
        return out
    }

    /** Top-k with labels. */
    fun predictions(scores: FloatArray, labels: List<String>, k: Int): List<Prediction> =
        indices(scores, k).map { (i, s) -> Prediction(i, labels.getOrElse(i) { "#$i" }, s) }

    // a strictly before b? Primitive comparison, so -0.0 and 0.0 tie as they do in numpy.
    private fun ranksBefore(a: Float, b: Float): Boolean = when {
        a.isNaN() -> false
        b.isNaN() -> true
        else -> a > b
    }
}
