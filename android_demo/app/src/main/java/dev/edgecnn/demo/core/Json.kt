package dev.edgecnn.demo.core

/**
 * A small, strict JSON reader (RFC 8259) for contract.json, so the core needs no library.
 *
 * Objects become [LinkedHashMap]s (duplicate keys are an error), arrays [List]s, strings
 * [String]s, `true`/`false` [Boolean]s, `null` null, and numbers [JsonNumber]s that keep their
 * text, so a value is converted exactly once, where its type is known.
 */
class JsonException(message: String) : IllegalArgumentException(message)

/** A JSON number as written; [toDouble] rounds it as Python's float() does (nearest double). */
class JsonNumber(val text: String) {
    fun toDouble(): Double = text.toDouble()

    /** The value as an Int, or null when it is not a whole number in Int range (e.g. 1.5). */
    fun toIntOrNull(): Int? {
        text.toIntOrNull()?.let { return it }
        val d = toDouble()
        if (d.isNaN() || d.isInfinite() || d != Math.floor(d)) return null
        if (d < Int.MIN_VALUE.toDouble() || d > Int.MAX_VALUE.toDouble()) return null
        return d.toInt()
    }

    override fun toString(): String = text
}

object Json {
    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipWs()
        val v = p.value(0)
        p.skipWs()
        if (!p.atEnd()) p.fail("unexpected trailing characters")
        return v
    }

    private class Parser(private val s: String) {
        private var i = 0

        fun atEnd() = i >= s.length

        fun fail(msg: String): Nothing {
            // line/column of the failure, 1-based, like Python's json module reports
            var line = 1
            var col = 1
            for (k in 0 until minOf(i, s.length)) {
                if (s[k] == '\n') { line++; col = 1 } else col++
            }
            throw JsonException("$msg at line $line column $col")
        }

        fun skipWs() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++
        }

        fun value(depth: Int): Any? {
            if (depth > 64) fail("nesting too deep")
            if (atEnd()) fail("expected a value")
            return when (val c = s[i]) {
                '{' -> obj(depth)
                '[' -> arr(depth)
                '"' -> str()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') num() else fail("unexpected character '$c'")
            }
        }

        private fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, i)) fail("expected '$word'")
            i += word.length
            return v
        }

        private fun obj(depth: Int): Map<String, Any?> {
            val m = LinkedHashMap<String, Any?>()
            i++ // {
            skipWs()
            if (i < s.length && s[i] == '}') { i++; return m }
            while (true) {
                skipWs()
                if (atEnd() || s[i] != '"') fail("expected a string key")
                val k = str()
                skipWs()
                if (atEnd() || s[i] != ':') fail("expected ':'")
                i++
                skipWs()
                if (m.containsKey(k)) fail("duplicate key \"$k\"")
                m[k] = value(depth + 1)
                skipWs()
                if (atEnd()) fail("unterminated object")
                when (s[i]) {
                    ',' -> i++
                    '}' -> { i++; return m }
                    else -> fail("expected ',' or '}'")
                }
            }
        }

        private fun arr(depth: Int): List<Any?> {
            val a = ArrayList<Any?>()
            i++ // [
            skipWs()
            if (i < s.length && s[i] == ']') { i++; return a }
            while (true) {
                skipWs()
                a.add(value(depth + 1))
                skipWs()
                if (atEnd()) fail("unterminated array")
                when (s[i]) {
                    ',' -> i++
                    ']' -> { i++; return a }
                    else -> fail("expected ',' or ']'")
                }
            }
        }

        private fun str(): String {
            i++ // opening quote
            val b = StringBuilder()
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = s[i++]
                when {
                    c == '"' -> return b.toString()
                    c == '\\' -> {
                        if (atEnd()) fail("unterminated escape")
                        when (val e = s[i++]) {
                            '"' -> b.append('"')
                            '\\' -> b.append('\\')
                            '/' -> b.append('/')
                            'b' -> b.append('\b')
                            'f' -> b.append('\u000C')
                            'n' -> b.append('\n')
                            'r' -> b.append('\r')
                            't' -> b.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) fail("short \\u escape")
                                val hex = s.substring(i, i + 4)
                                val code = hex.toIntOrNull(16) ?: fail("bad \\u escape '$hex'")
                                i += 4
                                b.append(code.toChar()) // surrogate pairs arrive as two escapes
                            }
                            else -> fail("bad escape '\\$e'")
                        }
                    }
                    c < ' ' -> fail("control character in string")
                    else -> b.append(c)
                }
            }
        }

        private fun num(): JsonNumber {
            val start = i
            if (s[i] == '-') i++
            if (atEnd()) fail("bad number")
            if (s[i] == '0') i++ else if (s[i] in '1'..'9') { while (i < s.length && s[i].isAsciiDigit()) i++ } else fail("bad number")
            if (i < s.length && s[i] == '.') {
                i++
                if (atEnd() || !s[i].isAsciiDigit()) fail("bad number")
                while (i < s.length && s[i].isAsciiDigit()) i++
            }
            if (i < s.length && (s[i] == 'e' || s[i] == 'E')) {
                i++
                if (i < s.length && (s[i] == '+' || s[i] == '-')) i++
                if (atEnd() || !s[i].isAsciiDigit()) fail("bad number")
                while (i < s.length && s[i].isAsciiDigit()) i++
            }
            return JsonNumber(s.substring(start, i))
        }

        private fun Char.isAsciiDigit() = this in '0'..'9'
    }
}
