#include "common/gguf/gguf_value.h"

#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/string_view_compat.h"

namespace wf::gguf {
namespace {

using ::wf::Av;

template <typename T>
uint64_t BitsOf(T v) {
  static_assert(sizeof(T) <= sizeof(uint64_t));
  std::make_unsigned_t<std::conditional_t<std::is_floating_point_v<T>,
                                          std::conditional_t<sizeof(T) == 4, int32_t, int64_t>, T>>
      u;
  std::memcpy(&u, &v, sizeof(T));
  return static_cast<uint64_t>(u);
}

template <typename T>
T FromBits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));  // Little-endian host: the low bytes come first.
  return v;
}

// The integer held by a scalar of integer type. __int128 holds every u64 and
// i64 exactly, which makes the range checks below one comparison each.
__int128 IntegerOf(ValueType type, uint64_t bits) {
  switch (type) {
    case ValueType::UINT8: return FromBits<uint8_t>(bits);
    case ValueType::INT8: return FromBits<int8_t>(bits);
    case ValueType::UINT16: return FromBits<uint16_t>(bits);
    case ValueType::INT16: return FromBits<int16_t>(bits);
    case ValueType::UINT32: return FromBits<uint32_t>(bits);
    case ValueType::INT32: return FromBits<int32_t>(bits);
    case ValueType::UINT64: return FromBits<uint64_t>(bits);
    case ValueType::INT64: return FromBits<int64_t>(bits);
    default: return 0;
  }
}

std::string Int128ToString(__int128 v) {
  if (v < 0) return absl::StrCat("-", static_cast<uint64_t>(-v));
  return absl::StrCat(static_cast<uint64_t>(v));
}

template <typename T>
bool BitwiseEqual(const std::vector<T>& a, const std::vector<T>& b) {
  if constexpr (std::is_arithmetic_v<T>) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
  } else {
    return a == b;
  }
}

std::string ScalarDebugString(ValueType type, uint64_t bits) {
  switch (type) {
    case ValueType::FLOAT32: return absl::StrFormat("%g", FromBits<float>(bits));
    case ValueType::FLOAT64: return absl::StrFormat("%g", FromBits<double>(bits));
    case ValueType::BOOL: return bits != 0 ? "true" : "false";
    default: return Int128ToString(IntegerOf(type, bits));
  }
}

std::string Quote(std::string_view s, size_t max_chars = 64) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, static_cast<char>(c)));
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (s.size() > max_chars) out += "...";
  return out + "\"";
}

}  // namespace

Value Value::Scalar(ValueType type, uint64_t raw_bits) {
  Value v;
  const size_t size = ValueTypeSize(type);
  if (size == 0) return v;
  v.type_ = type;
  v.bits_ = size == 8 ? raw_bits : raw_bits & ((uint64_t{1} << (8 * size)) - 1);
  return v;
}

Value Value::U8(uint8_t v) { return Scalar(ValueType::UINT8, BitsOf(v)); }
Value Value::I8(int8_t v) { return Scalar(ValueType::INT8, BitsOf(v)); }
Value Value::U16(uint16_t v) { return Scalar(ValueType::UINT16, BitsOf(v)); }
Value Value::I16(int16_t v) { return Scalar(ValueType::INT16, BitsOf(v)); }
Value Value::U32(uint32_t v) { return Scalar(ValueType::UINT32, BitsOf(v)); }
Value Value::I32(int32_t v) { return Scalar(ValueType::INT32, BitsOf(v)); }
Value Value::F32(float v) { return Scalar(ValueType::FLOAT32, BitsOf(v)); }
Value Value::Bool(bool v) { return Scalar(ValueType::BOOL, v ? 1 : 0); }
Value Value::U64(uint64_t v) { return Scalar(ValueType::UINT64, v); }
Value Value::I64(int64_t v) { return Scalar(ValueType::INT64, BitsOf(v)); }
Value Value::F64(double v) { return Scalar(ValueType::FLOAT64, BitsOf(v)); }

Value Value::String(std::string v) {
  Value out;
  out.type_ = ValueType::STRING;
  out.string_ = std::move(v);
  return out;
}

template <typename T>
Value Value::MakeArray(ValueType element_type, std::vector<T> v) {
  Value out;
  out.type_ = ValueType::ARRAY;
  out.element_type_ = element_type;
  out.array_ = std::move(v);
  return out;
}

Value Value::U8Array(std::vector<uint8_t> v) { return MakeArray(ValueType::UINT8, std::move(v)); }
Value Value::I8Array(std::vector<int8_t> v) { return MakeArray(ValueType::INT8, std::move(v)); }
Value Value::U16Array(std::vector<uint16_t> v) { return MakeArray(ValueType::UINT16, std::move(v)); }
Value Value::I16Array(std::vector<int16_t> v) { return MakeArray(ValueType::INT16, std::move(v)); }
Value Value::U32Array(std::vector<uint32_t> v) { return MakeArray(ValueType::UINT32, std::move(v)); }
Value Value::I32Array(std::vector<int32_t> v) { return MakeArray(ValueType::INT32, std::move(v)); }
Value Value::F32Array(std::vector<float> v) { return MakeArray(ValueType::FLOAT32, std::move(v)); }
Value Value::BoolArray(std::vector<uint8_t> v) { return MakeArray(ValueType::BOOL, std::move(v)); }
Value Value::StringArray(std::vector<std::string> v) {
  return MakeArray(ValueType::STRING, std::move(v));
}
Value Value::U64Array(std::vector<uint64_t> v) { return MakeArray(ValueType::UINT64, std::move(v)); }
Value Value::I64Array(std::vector<int64_t> v) { return MakeArray(ValueType::INT64, std::move(v)); }
Value Value::F64Array(std::vector<double> v) { return MakeArray(ValueType::FLOAT64, std::move(v)); }
Value Value::ArrayOfArrays(std::vector<Value> v) { return MakeArray(ValueType::ARRAY, std::move(v)); }

size_t Value::array_size() const {
  return std::visit(
      [](const auto& v) -> size_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) {
          return 0;
        } else {
          return v.size();
        }
      },
      array_);
}

std::string Value::TypeName() const {
  if (!is_array()) return ValueTypeName(type_);
  return absl::StrCat("array[", ValueTypeName(element_type_), "]");
}

absl::Status Value::Validate() const {
  if (!is_array() || element_type_ != ValueType::ARRAY) return absl::OkStatus();
  const std::vector<Value>* elements = ArrayData<Value>();
  if (elements == nullptr) return absl::OkStatus();
  for (size_t i = 0; i < elements->size(); ++i) {
    const Value& e = (*elements)[i];
    if (!e.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "element ", i, " of an array of arrays is a ", e.TypeName(), ", not an array"));
    }
    absl::Status s = e.Validate();
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("element ", i, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Value::TypeError(std::string_view expected) const {
  return absl::InvalidArgumentError(absl::StrCat("expected ", Av(expected), ", found ", TypeName()));
}

namespace {

template <typename T>
absl::StatusOr<T> IntegerAs(ValueType type, uint64_t bits, std::string_view target) {
  const __int128 v = IntegerOf(type, bits);
  if (v < static_cast<__int128>(std::numeric_limits<T>::min()) ||
      v > static_cast<__int128>(std::numeric_limits<T>::max())) {
    return absl::OutOfRangeError(absl::StrCat("value ", Int128ToString(v), " (",
                                              ValueTypeName(type), ") does not fit in ", Av(target)));
  }
  return static_cast<T>(v);
}

}  // namespace

absl::StatusOr<uint32_t> Value::ToU32() const {
  if (!IsIntegerValueType(type_)) return TypeError("u32");
  return IntegerAs<uint32_t>(type_, bits_, "u32");
}

absl::StatusOr<int32_t> Value::ToI32() const {
  if (!IsIntegerValueType(type_)) return TypeError("i32");
  return IntegerAs<int32_t>(type_, bits_, "i32");
}

absl::StatusOr<uint64_t> Value::ToU64() const {
  if (!IsIntegerValueType(type_)) return TypeError("u64");
  return IntegerAs<uint64_t>(type_, bits_, "u64");
}

absl::StatusOr<int64_t> Value::ToI64() const {
  if (!IsIntegerValueType(type_)) return TypeError("i64");
  return IntegerAs<int64_t>(type_, bits_, "i64");
}

absl::StatusOr<float> Value::ToF32() const {
  if (type_ == ValueType::FLOAT32) return FromBits<float>(bits_);
  if (type_ == ValueType::FLOAT64) return static_cast<float>(FromBits<double>(bits_));
  return TypeError("f32");
}

absl::StatusOr<double> Value::ToF64() const {
  if (type_ == ValueType::FLOAT32) return static_cast<double>(FromBits<float>(bits_));
  if (type_ == ValueType::FLOAT64) return FromBits<double>(bits_);
  return TypeError("f64");
}

absl::StatusOr<bool> Value::ToBool() const {
  if (type_ != ValueType::BOOL) return TypeError("bool");
  return bits_ != 0;
}

absl::StatusOr<std::string_view> Value::ToString() const {
  if (type_ != ValueType::STRING) return TypeError("string");
  return std::string_view(string_);
}

absl::StatusOr<absl::Span<const std::string>> Value::ToStringArray() const {
  if (!is_array() || element_type_ != ValueType::STRING) return TypeError("array[string]");
  return absl::MakeConstSpan(*ArrayData<std::string>());
}

absl::StatusOr<absl::Span<const float>> Value::ToF32Array() const {
  if (!is_array() || element_type_ != ValueType::FLOAT32) return TypeError("array[f32]");
  return absl::MakeConstSpan(*ArrayData<float>());
}

absl::StatusOr<absl::Span<const int32_t>> Value::ToI32Array() const {
  if (!is_array() || element_type_ != ValueType::INT32) return TypeError("array[i32]");
  return absl::MakeConstSpan(*ArrayData<int32_t>());
}

absl::StatusOr<absl::Span<const uint32_t>> Value::ToU32Array() const {
  if (!is_array() || element_type_ != ValueType::UINT32) return TypeError("array[u32]");
  return absl::MakeConstSpan(*ArrayData<uint32_t>());
}

absl::StatusOr<absl::Span<const Value>> Value::ToArrayOfArrays() const {
  if (!is_array() || element_type_ != ValueType::ARRAY) return TypeError("array[array]");
  return absl::MakeConstSpan(*ArrayData<Value>());
}

std::string Value::DebugString(size_t max_elements) const {
  if (type_ == ValueType::STRING) return absl::StrCat("string ", Quote(string_));
  if (!is_array()) return absl::StrCat(TypeName(), " ", ScalarDebugString(type_, bits_));
  std::string out = absl::StrCat("array[", ValueTypeName(element_type_), ", ", array_size(), "] [");
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (!std::is_same_v<V, std::monostate>) {
          using T = typename V::value_type;
          for (size_t i = 0; i < v.size() && i < max_elements; ++i) {
            if (i > 0) out += ", ";
            if constexpr (std::is_same_v<T, std::string>) {
              out += Quote(v[i]);
            } else if constexpr (std::is_same_v<T, Value>) {
              out += v[i].DebugString(max_elements);
            } else {
              out += ScalarDebugString(element_type_, BitsOf(v[i]));
            }
          }
          if (v.size() > max_elements) out += ", ...";
        }
      },
      array_);
  return out + "]";
}

bool operator==(const Value& a, const Value& b) {
  if (a.type_ != b.type_) return false;
  if (a.type_ == ValueType::STRING) return a.string_ == b.string_;
  if (!a.is_array()) return a.bits_ == b.bits_;
  if (a.element_type_ != b.element_type_ || a.array_.index() != b.array_.index()) return false;
  return std::visit(
      [&b](const auto& va) {
        using V = std::decay_t<decltype(va)>;
        if constexpr (std::is_same_v<V, std::monostate>) {
          return true;
        } else {
          return BitwiseEqual(va, std::get<V>(b.array_));
        }
      },
      a.array_);
}

}  // namespace wf::gguf
