plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "dev.edgecnn.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.edgecnn.demo"
        minSdk = 24          // LiteRT 2.3's AARs require 24; CameraX 1.6 supports 23+
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // phones (arm64) and the x86_64 emulator; drop x86_64 to halve the native libraries
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            // Debug-signed so `./gradlew installRelease` works for a field test; use your own key to ship.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // The model is memory-mapped straight from the APK: it must be stored uncompressed.
        noCompress += listOf("tflite")
    }
}

dependencies {
    implementation(libs.androidx.activity.ktx)
    implementation(libs.camerax.core)
    implementation(libs.camerax.camera2)
    implementation(libs.camerax.lifecycle)
    implementation(libs.camerax.view)
    implementation(libs.litert)
    implementation(libs.litert.gpu)
}
