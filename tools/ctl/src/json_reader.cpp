#include "json_reader.hpp"

#include <charconv>

#include "rrh/json.hpp"

namespace rrh::ctl {
namespace {

class parser {
 public:
  explicit parser(std::string_view text) : text_(text) {}

  expected<json_value> parse_document() {
    json_value value;
    skip_blanks();
    if (!parse_value(value, 0)) return failure();
    skip_blanks();
    if (position_ != text_.size()) {
      error_ = "trailing characters";
      return failure();
    }
    return value;
  }

 private:
  rrh::error failure() const {
    return make_error(errc::malformed,
                      "invalid JSON at byte " + std::to_string(position_) + ": " + error_);
  }

  bool fail(const char* why) {
    error_ = why;
    return false;
  }

  void skip_blanks() {
    while (position_ < text_.size()) {
      const char c = text_[position_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++position_;
    }
  }

  bool at_end() const { return position_ >= text_.size(); }

  bool literal(std::string_view word) {
    if (text_.substr(position_, word.size()) != word) return fail("unknown literal");
    position_ += word.size();
    return true;
  }

  bool parse_value(json_value& out, std::size_t depth) {
    if (depth > json_depth_max) return fail("nested too deeply");
    if (at_end()) return fail("unexpected end");
    switch (text_[position_]) {
      case '{': return parse_object(out, depth);
      case '[': return parse_array(out, depth);
      case '"': out.type = json_value::kind::string; return parse_string(out.text);
      case 't':
        out.type = json_value::kind::boolean;
        out.boolean = true;
        return literal("true");
      case 'f':
        out.type = json_value::kind::boolean;
        out.boolean = false;
        return literal("false");
      case 'n': out.type = json_value::kind::null; return literal("null");
      default: return parse_number(out);
    }
  }

  bool parse_object(json_value& out, std::size_t depth) {
    out.type = json_value::kind::object;
    ++position_;  // '{'
    skip_blanks();
    if (!at_end() && text_[position_] == '}') {
      ++position_;
      return true;
    }
    while (true) {
      skip_blanks();
      if (at_end() || text_[position_] != '"') return fail("expected a member name");
      json_member member;
      if (!parse_string(member.key)) return false;
      skip_blanks();
      if (at_end() || text_[position_] != ':') return fail("expected ':'");
      ++position_;
      skip_blanks();
      if (!parse_value(member.value, depth + 1)) return false;
      out.members.push_back(std::move(member));
      skip_blanks();
      if (at_end()) return fail("unexpected end in an object");
      if (text_[position_] == ',') {
        ++position_;
        continue;
      }
      if (text_[position_] == '}') {
        ++position_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool parse_array(json_value& out, std::size_t depth) {
    out.type = json_value::kind::array;
    ++position_;  // '['
    skip_blanks();
    if (!at_end() && text_[position_] == ']') {
      ++position_;
      return true;
    }
    while (true) {
      skip_blanks();
      json_value item;
      if (!parse_value(item, depth + 1)) return false;
      out.items.push_back(std::move(item));
      skip_blanks();
      if (at_end()) return fail("unexpected end in an array");
      if (text_[position_] == ',') {
        ++position_;
        continue;
      }
      if (text_[position_] == ']') {
        ++position_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool parse_hex4(std::uint32_t& out) {
    if (position_ + 4 > text_.size()) return fail("short \\u escape");
    const auto* first = text_.data() + position_;
    const auto result = std::from_chars(first, first + 4, out, 16);
    if (result.ec != std::errc{} || result.ptr != first + 4) return fail("bad \\u escape");
    position_ += 4;
    return true;
  }

  static void append_utf8(std::string& out, std::uint32_t code_point) {
    if (code_point < 0x80) {
      out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
      out += static_cast<char>(0xc0 | (code_point >> 6));
      out += static_cast<char>(0x80 | (code_point & 0x3f));
    } else if (code_point < 0x10000) {
      out += static_cast<char>(0xe0 | (code_point >> 12));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code_point & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (code_point >> 18));
      out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code_point & 0x3f));
    }
  }

  bool parse_escape(std::string& out) {
    if (at_end()) return fail("unexpected end in an escape");
    const char c = text_[position_++];
    switch (c) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': {
        std::uint32_t code_point = 0;
        if (!parse_hex4(code_point)) return false;
        if (code_point >= 0xd800 && code_point < 0xdc00) {
          // A high surrogate: the low half must follow as another \u escape.
          std::uint32_t low = 0;
          if (text_.substr(position_, 2) != "\\u") return fail("lone surrogate");
          position_ += 2;
          if (!parse_hex4(low)) return false;
          if (low < 0xdc00 || low >= 0xe000) return fail("bad surrogate pair");
          code_point = 0x10000 + ((code_point - 0xd800) << 10) + (low - 0xdc00);
        } else if (code_point >= 0xdc00 && code_point < 0xe000) {
          return fail("lone surrogate");
        }
        append_utf8(out, code_point);
        return true;
      }
      default: return fail("unknown escape");
    }
  }

  bool parse_string(std::string& out) {
    ++position_;  // opening quote
    while (true) {
      if (at_end()) return fail("unterminated string");
      const char c = text_[position_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (!parse_escape(out)) return false;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return fail("control character in a string");
      } else {
        out += c;
      }
    }
  }

  bool digits() {
    const auto start = position_;
    while (!at_end() && text_[position_] >= '0' && text_[position_] <= '9') ++position_;
    return position_ > start;
  }

  bool parse_number(json_value& out) {
    const auto start = position_;
    if (!at_end() && text_[position_] == '-') ++position_;
    if (!at_end() && text_[position_] == '0') {
      ++position_;
    } else if (!digits()) {
      return fail("unexpected character");
    }
    if (!at_end() && text_[position_] == '.') {
      ++position_;
      if (!digits()) return fail("digits expected after '.'");
    }
    if (!at_end() && (text_[position_] == 'e' || text_[position_] == 'E')) {
      ++position_;
      if (!at_end() && (text_[position_] == '+' || text_[position_] == '-')) ++position_;
      if (!digits()) return fail("digits expected in the exponent");
    }
    out.type = json_value::kind::number;
    out.text = std::string(text_.substr(start, position_ - start));
    return true;
  }

  std::string_view text_;
  std::size_t position_ = 0;
  std::string error_;
};

void write(std::string& out, const json_value& value) {
  switch (value.type) {
    case json_value::kind::null: out += "null"; break;
    case json_value::kind::boolean: out += value.boolean ? "true" : "false"; break;
    case json_value::kind::number: out += value.text; break;
    case json_value::kind::string: append_json_string(out, value.text); break;
    case json_value::kind::array: {
      out += '[';
      for (std::size_t index = 0; index < value.items.size(); ++index) {
        if (index > 0) out += ',';
        write(out, value.items[index]);
      }
      out += ']';
      break;
    }
    case json_value::kind::object: {
      out += '{';
      for (std::size_t index = 0; index < value.members.size(); ++index) {
        if (index > 0) out += ',';
        append_json_string(out, value.members[index].key);
        out += ':';
        write(out, value.members[index].value);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

const json_value* json_value::find(std::string_view key) const {
  if (type != kind::object) return nullptr;
  for (const auto& member : members) {
    if (member.key == key) return &member.value;
  }
  return nullptr;
}

std::optional<std::uint64_t> json_value::as_u64() const {
  if (type != kind::number) return std::nullopt;
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, value);
  if (result.ec != std::errc{} || result.ptr != end) return std::nullopt;
  return value;
}

std::string json_value::display() const {
  switch (type) {
    case kind::null: return "null";
    case kind::boolean: return boolean ? "true" : "false";
    case kind::number:
    case kind::string: return text;
    case kind::array: {
      std::string out;
      for (const auto& item : items) {
        if (item.is_array() || item.is_object()) return to_json(*this);
        if (!out.empty()) out += ",";
        out += item.display();
      }
      return out;
    }
    case kind::object: return to_json(*this);
  }
  return {};
}

expected<json_value> parse_json(std::string_view text) { return parser(text).parse_document(); }

std::string to_json(const json_value& value) {
  std::string out;
  write(out, value);
  return out;
}

}  // namespace rrh::ctl
