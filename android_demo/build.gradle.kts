// Top-level build file. AGP 9 compiles Kotlin itself ("built-in Kotlin"): no kotlin-android plugin.
buildscript {
    repositories {
        google()
        mavenCentral()
    }
    dependencies {
        // AGP 9 brings Kotlin Gradle plugin 2.2.10; use the same Kotlin as the checks (kotlinc 2.4.20).
        classpath(libs.kotlin.gradle.plugin)
    }
}

plugins {
    alias(libs.plugins.android.application) apply false
}
