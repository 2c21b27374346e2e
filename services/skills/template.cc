#include "services/skills/template.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace cnet::skills {

struct Expression::Node {
  enum class Kind { kLiteral, kRef, kNot, kAnd, kOr, kCompare, kCall };
  Kind kind = Kind::kLiteral;
  Json literal;
  Reference ref;
  std::string op;  // compare operator or function name
  std::vector<std::shared_ptr<const Node>> kids;
  int height = 1;  // levels of the tree below and including this node
};

namespace {

using Node = Expression::Node;
using NodePtr = std::shared_ptr<const Node>;

enum class Tok { kEnd, kName, kInt, kFloat, kString, kOp, kLParen, kRParen, kLBracket,
                 kRBracket, kDot, kComma };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // name, operator, string value
  Json number;
  int offset = 0;
};

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string Shown(const Token& t) {
  switch (t.kind) {
    case Tok::kEnd: return "end of expression";
    case Tok::kString: return absl::StrCat("'", t.text, "'");
    case Tok::kInt:
    case Tok::kFloat: return absl::StrCat("\"", t.number.dump(), "\"");
    default: return absl::StrCat("\"", t.text, "\"");
  }
}

class Lexer {
 public:
  Lexer(std::string_view text, int base) : text_(text), base_(base) {}

  bool Run(std::vector<Token>* out, SyntaxError* error) {
    size_t i = 0;
    while (i < text_.size()) {
      char c = text_[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      Token t;
      t.offset = base_ + static_cast<int>(i);
      if (IsNameStart(c)) {
        size_t j = i;
        while (j < text_.size() && IsNameChar(text_[j])) ++j;
        t.kind = Tok::kName;
        t.text = std::string(text_.substr(i, j - i));
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '-' && i + 1 < text_.size() &&
                  std::isdigit(static_cast<unsigned char>(text_[i + 1])))) {
        size_t j = i + 1;
        bool is_float = false;
        while (j < text_.size()) {
          char d = text_[j];
          if (std::isdigit(static_cast<unsigned char>(d))) {
            ++j;
          } else if (d == '.' && j + 1 < text_.size() &&
                     std::isdigit(static_cast<unsigned char>(text_[j + 1])) && !is_float) {
            is_float = true;
            ++j;
          } else if ((d == 'e' || d == 'E') && j + 1 < text_.size()) {
            is_float = true;
            ++j;
            if (text_[j] == '+' || text_[j] == '-') ++j;
          } else {
            break;
          }
        }
        std::string num(text_.substr(i, j - i));
        if (is_float) {
          char* end = nullptr;
          double v = std::strtod(num.c_str(), &end);
          if (end == nullptr || *end != '\0' || !std::isfinite(v)) {
            return Fail(error, t.offset, absl::StrCat("malformed number \"", num, "\""));
          }
          t.kind = Tok::kFloat;
          t.number = v;
        } else {
          errno = 0;
          char* end = nullptr;
          long long v = std::strtoll(num.c_str(), &end, 10);
          if (errno != 0 || end == nullptr || *end != '\0' || std::llabs(v) >= (1LL << 53)) {
            return Fail(error, t.offset,
                        absl::StrCat("integer \"", num, "\" out of range (|x| < 2^53)"));
          }
          t.kind = Tok::kInt;
          t.number = static_cast<int64_t>(v);
        }
        t.text = num;
        i = j;
      } else if (c == '\'' || c == '"') {
        size_t j = i + 1;
        std::string value;
        bool closed = false;
        while (j < text_.size()) {
          char d = text_[j];
          if (d == '\\' && j + 1 < text_.size()) {
            char e = text_[j + 1];
            switch (e) {
              case 'n': value += '\n'; break;
              case 't': value += '\t'; break;
              case '\\': value += '\\'; break;
              case '\'': value += '\''; break;
              case '"': value += '"'; break;
              default:
                return Fail(error, base_ + static_cast<int>(j),
                            absl::StrCat("unknown escape \"\\", std::string(1, e),
                                         "\" in string literal"));
            }
            j += 2;
            continue;
          }
          if (d == c) {
            closed = true;
            ++j;
            break;
          }
          value += d;
          ++j;
        }
        if (!closed) return Fail(error, t.offset, "unterminated string literal");
        t.kind = Tok::kString;
        t.text = value;
        i = j;
      } else {
        static const char* kOps[] = {"==", "!=", "<=", ">=", "&&", "||", "<", ">", "!"};
        bool matched = false;
        for (const char* op : kOps) {
          std::string_view o(op);
          if (text_.substr(i, o.size()) == o) {
            t.kind = Tok::kOp;
            t.text = std::string(o);
            i += o.size();
            matched = true;
            break;
          }
        }
        if (!matched) {
          switch (c) {
            case '(': t.kind = Tok::kLParen; break;
            case ')': t.kind = Tok::kRParen; break;
            case '[': t.kind = Tok::kLBracket; break;
            case ']': t.kind = Tok::kRBracket; break;
            case '.': t.kind = Tok::kDot; break;
            case ',': t.kind = Tok::kComma; break;
            case '=':
              return Fail(error, t.offset, "\"=\" is not an operator (compare with \"==\")");
            default:
              return Fail(error, t.offset,
                          absl::StrCat("unexpected character \"", std::string(1, c), "\""));
          }
          t.text = std::string(1, c);
          ++i;
        }
      }
      out->push_back(std::move(t));
    }
    Token end;
    end.kind = Tok::kEnd;
    end.offset = base_ + static_cast<int>(text_.size());
    out->push_back(end);
    return true;
  }

 private:
  static bool Fail(SyntaxError* error, int offset, std::string message) {
    error->offset = offset;
    error->message = std::move(message);
    return false;
  }
  std::string_view text_;
  int base_;
};

// Expressions nest at most this deep (parentheses, `not`, calls, chains of
// and/or): parsing, evaluating and freeing a tree recurse over its height,
// so a hostile `((((...` or `1 or 1 or ...` must stop here, not at the end
// of the stack (fuzz finding F3, services/skills/fuzz).
constexpr int kMaxExpressionDepth = 64;

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::vector<Reference>* refs)
      : toks_(std::move(tokens)), refs_(refs) {}

  NodePtr ParseAll(SyntaxError* error) {
    error_ = error;
    if (Peek().kind == Tok::kEnd) {
      Fail(Peek().offset, "empty expression");
      return nullptr;
    }
    NodePtr n = ParseOr();
    if (n == nullptr) {
      if (!failed_) Fail(Peek().offset, absl::StrCat("expected a value, found ", Shown(Peek())));
      return nullptr;
    }
    if (Peek().kind != Tok::kEnd) {
      Fail(Peek().offset,
           absl::StrCat("unexpected ", Shown(Peek()), " after a complete expression"));
      return nullptr;
    }
    return n;
  }

 private:
  const Token& Peek() const { return toks_[pos_]; }
  const Token& Next() { return toks_[pos_++]; }
  bool IsWord(const Token& t, std::string_view w) const {
    return t.kind == Tok::kName && t.text == w;
  }
  bool IsOp(const Token& t, std::string_view o) const {
    return t.kind == Tok::kOp && t.text == o;
  }
  std::nullptr_t Fail(int offset, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_->offset = offset;
      error_->message = std::move(message);
    }
    return nullptr;
  }

  NodePtr Binary(Node::Kind kind, NodePtr a, NodePtr b) {
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->height = 1 + std::max(a->height, b->height);
    n->kids = {std::move(a), std::move(b)};
    if (n->height > kMaxExpressionDepth) return TooDeep();
    return n;
  }

  std::nullptr_t TooDeep() {
    return Fail(Peek().offset, absl::StrCat("expression nested deeper than ",
                                            kMaxExpressionDepth, " levels"));
  }

  // Bounds the parser's own recursion (the tree's height is checked as it
  // is built).
  struct Nest {
    explicit Nest(int* depth) : depth_(depth) { ++*depth_; }
    ~Nest() { --*depth_; }
    int* depth_;
  };

  NodePtr ParseOr() {
    Nest nest(&depth_);
    if (depth_ > kMaxExpressionDepth) return TooDeep();
    NodePtr left = ParseAnd();
    while (left && (IsWord(Peek(), "or") || IsOp(Peek(), "||"))) {
      Token op = Next();
      NodePtr right = ParseAnd();
      if (!right) return OperandMissing(op);
      left = Binary(Node::Kind::kOr, left, right);
    }
    return left;
  }

  NodePtr ParseAnd() {
    NodePtr left = ParseNot();
    while (left && (IsWord(Peek(), "and") || IsOp(Peek(), "&&"))) {
      Token op = Next();
      NodePtr right = ParseNot();
      if (!right) return OperandMissing(op);
      left = Binary(Node::Kind::kAnd, left, right);
    }
    return left;
  }

  NodePtr ParseNot() {
    if (IsWord(Peek(), "not") || IsOp(Peek(), "!")) {
      Nest nest(&depth_);
      if (depth_ > kMaxExpressionDepth) return TooDeep();
      Token op = Next();
      NodePtr inner = ParseNot();
      if (!inner) return OperandMissing(op);
      auto n = std::make_shared<Node>();
      n->kind = Node::Kind::kNot;
      n->height = inner->height + 1;
      n->kids = {inner};
      if (n->height > kMaxExpressionDepth) return TooDeep();
      return n;
    }
    return ParseCompare();
  }

  static bool IsCompareOp(const Token& t) {
    return t.kind == Tok::kOp && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                  t.text == "<=" || t.text == ">" || t.text == ">=");
  }

  NodePtr ParseCompare() {
    NodePtr left = ParseOperand();
    if (!left || !IsCompareOp(Peek())) return left;
    Token op = Next();
    NodePtr right = ParseOperand();
    if (!right) return OperandMissing(op);
    if (IsCompareOp(Peek())) {
      return Fail(Peek().offset, absl::StrCat("comparisons do not chain: \"", Peek().text,
                                              "\" after \"", op.text, "\" (use \"and\")"));
    }
    auto n = Binary(Node::Kind::kCompare, left, right);
    if (n == nullptr) return nullptr;
    std::const_pointer_cast<Node>(n)->op = op.text;
    return n;
  }

  NodePtr OperandMissing(const Token& op) {
    if (failed_) return nullptr;
    return Fail(Peek().offset, absl::StrCat("expected a value after \"", op.text, "\", found ",
                                            Shown(Peek())));
  }

  NodePtr ParseOperand() {
    const Token& t = Peek();
    auto n = std::make_shared<Node>();
    switch (t.kind) {
      case Tok::kInt:
      case Tok::kFloat:
        n->kind = Node::Kind::kLiteral;
        n->literal = t.number;
        Next();
        return n;
      case Tok::kString:
        n->kind = Node::Kind::kLiteral;
        n->literal = t.text;
        Next();
        return n;
      case Tok::kLParen: {
        Token open = Next();
        NodePtr inner = ParseOr();
        if (!inner) return OperandMissing(open);
        if (Peek().kind != Tok::kRParen) {
          return Fail(Peek().offset, absl::StrCat("expected \")\" to close the \"(\" at offset ",
                                                  open.offset, ", found ", Shown(Peek())));
        }
        Next();
        return inner;
      }
      case Tok::kName: {
        if (t.text == "true" || t.text == "false") {
          n->kind = Node::Kind::kLiteral;
          n->literal = (t.text == "true");
          Next();
          return n;
        }
        if (t.text == "null") {
          n->kind = Node::Kind::kLiteral;
          n->literal = nullptr;
          Next();
          return n;
        }
        if (t.text == "and" || t.text == "or" || t.text == "not") return nullptr;
        if (toks_[pos_ + 1].kind == Tok::kLParen) return ParseCall();
        return ParseReference();
      }
      default:
        return nullptr;
    }
  }

  NodePtr ParseCall() {
    Token name = Next();
    if (name.text != "len" && name.text != "contains") {
      return Fail(name.offset, absl::StrCat("unknown function \"", name.text,
                                            "\" (functions: len, contains)"));
    }
    Token open = Next();  // (
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kCall;
    n->op = name.text;
    if (Peek().kind != Tok::kRParen) {
      for (;;) {
        NodePtr arg = ParseOr();
        if (!arg) return OperandMissing(open);
        n->height = std::max(n->height, arg->height + 1);
        if (n->height > kMaxExpressionDepth) return TooDeep();
        n->kids.push_back(arg);
        if (Peek().kind == Tok::kComma) {
          open = Next();
          continue;
        }
        break;
      }
    }
    if (Peek().kind != Tok::kRParen) {
      return Fail(Peek().offset, absl::StrCat("expected \")\" after the arguments of ",
                                              name.text, ", found ", Shown(Peek())));
    }
    Next();
    size_t want = name.text == "len" ? 1 : 2;
    if (n->kids.size() != want) {
      return Fail(name.offset, absl::StrCat(name.text, "() takes ", want, " argument",
                                            want == 1 ? "" : "s", ", got ", n->kids.size()));
    }
    return n;
  }

  NodePtr ParseReference() {
    Token root = Next();
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kRef;
    n->ref.root = root.text;
    n->ref.offset = root.offset;
    n->ref.text = root.text;
    for (;;) {
      if (Peek().kind == Tok::kDot) {
        Next();
        if (Peek().kind != Tok::kName) {
          return Fail(Peek().offset, absl::StrCat("expected a name after \".\" in \"",
                                                  n->ref.text, ".\", found ", Shown(Peek())));
        }
        PathSegment seg;
        seg.key = Next().text;
        n->ref.text += "." + seg.key;
        n->ref.path.push_back(seg);
      } else if (Peek().kind == Tok::kLBracket) {
        Next();
        PathSegment seg;
        if (Peek().kind == Tok::kInt) {
          seg.is_index = true;
          seg.index = Peek().number.get<int64_t>();
          n->ref.text += absl::StrCat("[", seg.index, "]");
        } else if (Peek().kind == Tok::kString) {
          seg.key = Peek().text;
          n->ref.text += absl::StrCat("['", seg.key, "']");
        } else {
          return Fail(Peek().offset, absl::StrCat("expected an integer index or a quoted key "
                                                  "inside \"[ ]\", found ", Shown(Peek())));
        }
        Next();
        if (Peek().kind != Tok::kRBracket) {
          return Fail(Peek().offset, absl::StrCat("expected \"]\", found ", Shown(Peek())));
        }
        Next();
        n->ref.path.push_back(seg);
      } else {
        break;
      }
    }
    refs_->push_back(n->ref);
    return n;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::vector<Reference>* refs_;
  SyntaxError* error_ = nullptr;
  bool failed_ = false;
  int depth_ = 0;
};

absl::Status EvalError(const std::string& expr, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("expression \"", expr, "\": ", message));
}

absl::StatusOr<Json> Resolve(const Reference& ref, const EvalScope& scope,
                             const std::string& expr) {
  const Json* root = nullptr;
  if (ref.root == "inputs") {
    root = scope.inputs;
  } else if (ref.root == "steps") {
    root = scope.steps;
  } else if (ref.root == "run") {
    root = scope.run;
  } else if (ref.root == "output") {
    root = scope.output;
  } else {
    return EvalError(expr, absl::StrCat("unknown name \"", ref.root, "\""));
  }
  if (root == nullptr) return Json(nullptr);
  const Json* cur = root;
  std::string walked = ref.root;
  for (const PathSegment& seg : ref.path) {
    if (cur->is_null()) return Json(nullptr);
    if (seg.is_index) {
      if (!cur->is_array()) {
        return EvalError(expr, absl::StrCat("cannot index ", walked, " (", TypeOf(*cur),
                                            ") with [", seg.index, "]"));
      }
      int64_t i = seg.index < 0 ? static_cast<int64_t>(cur->size()) + seg.index : seg.index;
      if (i < 0 || i >= static_cast<int64_t>(cur->size())) return Json(nullptr);
      cur = &(*cur)[static_cast<size_t>(i)];
      walked += absl::StrCat("[", seg.index, "]");
    } else {
      if (!cur->is_object()) {
        return EvalError(expr, absl::StrCat("cannot read field \"", seg.key, "\" of ", walked,
                                            " (", TypeOf(*cur), ")"));
      }
      auto it = cur->find(seg.key);
      if (it == cur->end()) return Json(nullptr);
      cur = &*it;
      walked += "." + seg.key;
    }
  }
  return *cur;
}

absl::StatusOr<bool> AsCondition(const Json& v, const std::string& what,
                                 const std::string& expr) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_null()) return false;
  return EvalError(expr, absl::StrCat(what, " needs a bool, got ", TypeOf(v), " ",
                                      Describe(v)));
}

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

absl::StatusOr<Json> Eval(const Node& n, const EvalScope& scope, const std::string& expr) {
  switch (n.kind) {
    case Node::Kind::kLiteral: return n.literal;
    case Node::Kind::kRef: return Resolve(n.ref, scope, expr);
    case Node::Kind::kNot: {
      auto v = Eval(*n.kids[0], scope, expr);
      if (!v.ok()) return v.status();
      auto b = AsCondition(*v, "\"not\"", expr);
      if (!b.ok()) return b.status();
      return Json(!*b);
    }
    case Node::Kind::kAnd:
    case Node::Kind::kOr: {
      const bool is_and = n.kind == Node::Kind::kAnd;
      const char* name = is_and ? "\"and\"" : "\"or\"";
      auto a = Eval(*n.kids[0], scope, expr);
      if (!a.ok()) return a.status();
      auto ab = AsCondition(*a, name, expr);
      if (!ab.ok()) return ab.status();
      if (is_and && !*ab) return Json(false);
      if (!is_and && *ab) return Json(true);
      auto b = Eval(*n.kids[1], scope, expr);
      if (!b.ok()) return b.status();
      auto bb = AsCondition(*b, name, expr);
      if (!bb.ok()) return bb.status();
      return Json(*bb);
    }
    case Node::Kind::kCompare: {
      auto a = Eval(*n.kids[0], scope, expr);
      if (!a.ok()) return a.status();
      auto b = Eval(*n.kids[1], scope, expr);
      if (!b.ok()) return b.status();
      if (n.op == "==") return Json(*a == *b);
      if (n.op == "!=") return Json(*a != *b);
      int cmp = 0;
      if (a->is_number() && b->is_number()) {
        if (a->is_number_float() || b->is_number_float()) {
          double x = a->get<double>(), y = b->get<double>();
          cmp = x < y ? -1 : (x > y ? 1 : 0);
        } else {
          int64_t x = a->get<int64_t>(), y = b->get<int64_t>();
          cmp = x < y ? -1 : (x > y ? 1 : 0);
        }
      } else if (a->is_string() && b->is_string()) {
        int c = a->get_ref<const std::string&>().compare(b->get_ref<const std::string&>());
        cmp = c < 0 ? -1 : (c > 0 ? 1 : 0);
      } else {
        return EvalError(expr, absl::StrCat("cannot order ", TypeOf(*a), " ", Describe(*a),
                                            " and ", TypeOf(*b), " ", Describe(*b), " with \"",
                                            n.op, "\""));
      }
      if (n.op == "<") return Json(cmp < 0);
      if (n.op == "<=") return Json(cmp <= 0);
      if (n.op == ">") return Json(cmp > 0);
      return Json(cmp >= 0);
    }
    case Node::Kind::kCall: {
      auto a = Eval(*n.kids[0], scope, expr);
      if (!a.ok()) return a.status();
      if (n.op == "len") {
        if (a->is_null()) return Json(0);
        if (a->is_string()) return Json(static_cast<int64_t>(Utf8Length(a->get<std::string>())));
        if (a->is_array() || a->is_object()) return Json(static_cast<int64_t>(a->size()));
        return EvalError(expr, absl::StrCat("len() needs a string, list or map, got ",
                                            TypeOf(*a)));
      }
      auto b = Eval(*n.kids[1], scope, expr);
      if (!b.ok()) return b.status();
      if (a->is_null()) return Json(false);
      if (a->is_string()) {
        if (!b->is_string()) {
          return EvalError(expr, absl::StrCat("contains() on a string needs a string to find, "
                                              "got ", TypeOf(*b)));
        }
        return Json(a->get_ref<const std::string&>().find(b->get_ref<const std::string&>()) !=
                    std::string::npos);
      }
      if (a->is_array()) {
        for (const Json& e : *a) {
          if (e == *b) return Json(true);
        }
        return Json(false);
      }
      if (a->is_object()) {
        if (!b->is_string()) {
          return EvalError(expr, absl::StrCat("contains() on a map needs a string key, got ",
                                              TypeOf(*b)));
        }
        return Json(a->contains(b->get<std::string>()));
      }
      return EvalError(expr, absl::StrCat("contains() needs a string, list or map, got ",
                                          TypeOf(*a)));
    }
  }
  return Json(nullptr);
}

std::string RenderText(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return Dump(v);
}

bool OnlySpace(std::string_view s) {
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

bool Expression::Parse(std::string_view text, int base_offset, Expression* out,
                       SyntaxError* error) {
  std::vector<Token> tokens;
  if (!Lexer(text, base_offset).Run(&tokens, error)) return false;
  Expression e;
  e.text_ = std::string(text);
  // Trim for display.
  size_t b = e.text_.find_first_not_of(" \t\n");
  size_t last = e.text_.find_last_not_of(" \t\n");
  e.text_ = b == std::string::npos ? "" : e.text_.substr(b, last - b + 1);
  Parser parser(std::move(tokens), &e.refs_);
  e.root_ = parser.ParseAll(error);
  if (e.root_ == nullptr) return false;
  *out = std::move(e);
  return true;
}

absl::StatusOr<Json> Expression::Evaluate(const EvalScope& scope) const {
  if (root_ == nullptr) return Json(nullptr);
  return Eval(*root_, scope, text_);
}

absl::StatusOr<bool> Expression::EvaluateCondition(const EvalScope& scope) const {
  auto v = Evaluate(scope);
  if (!v.ok()) return v.status();
  return AsCondition(*v, "a condition", text_);
}

bool Template::Parse(std::string_view text, Template* out, SyntaxError* error) {
  Template t;
  t.text_ = std::string(text);
  size_t i = 0;
  std::string literal;
  while (i < text.size()) {
    size_t open = text.find("{{", i);
    if (open == std::string_view::npos) {
      literal += std::string(text.substr(i));
      break;
    }
    literal += std::string(text.substr(i, open - i));
    // Find the closing braces outside string literals.
    size_t j = open + 2;
    char quote = 0;
    size_t close = std::string_view::npos;
    while (j < text.size()) {
      char c = text[j];
      if (quote != 0) {
        if (c == '\\') {
          j += 2;
          continue;
        }
        if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '}' && j + 1 < text.size() && text[j + 1] == '}') {
        close = j;
        break;
      }
      ++j;
    }
    if (close == std::string_view::npos) {
      error->offset = static_cast<int>(open);
      error->message = quote != 0 ? "unterminated string literal inside \"{{ }}\""
                                  : "unterminated \"{{\" (missing \"}}\")";
      return false;
    }
    if (!literal.empty()) {
      Part p;
      p.literal = literal;
      t.parts_.push_back(p);
      literal.clear();
    }
    Expression e;
    std::string_view inner = text.substr(open + 2, close - open - 2);
    if (!Expression::Parse(inner, static_cast<int>(open + 2), &e, error)) {
      if (error->message == "empty expression") error->offset = static_cast<int>(open);
      return false;
    }
    Part p;
    p.is_expr = true;
    p.expr_index = t.exprs_.size();
    t.exprs_.push_back(std::move(e));
    t.parts_.push_back(p);
    i = close + 2;
  }
  if (!literal.empty()) {
    Part p;
    p.literal = literal;
    t.parts_.push_back(p);
  }
  if (t.exprs_.size() == 1) {
    bool whole = true;
    for (const Part& p : t.parts_) {
      if (!p.is_expr && !OnlySpace(p.literal)) whole = false;
    }
    t.whole_ = whole;
  }
  *out = std::move(t);
  return true;
}

std::vector<Reference> Template::references() const {
  std::vector<Reference> refs;
  for (const Expression& e : exprs_) {
    refs.insert(refs.end(), e.references().begin(), e.references().end());
  }
  return refs;
}

absl::StatusOr<Json> Template::Render(const EvalScope& scope) const {
  if (exprs_.empty()) return Json(text_);
  if (whole_) return exprs_[0].Evaluate(scope);
  std::string out;
  for (const Part& p : parts_) {
    if (!p.is_expr) {
      out += p.literal;
      continue;
    }
    auto v = exprs_[p.expr_index].Evaluate(scope);
    if (!v.ok()) return v.status();
    out += RenderText(*v);
  }
  return Json(out);
}

bool ParseCondition(std::string_view text, Expression* out, SyntaxError* error) {
  size_t b = text.find_first_not_of(" \t\n");
  size_t e = text.find_last_not_of(" \t\n");
  if (b != std::string_view::npos && text.substr(b, 2) == "{{" && e >= b + 3 &&
      text.substr(e - 1, 2) == "}}") {
    std::string_view inner = text.substr(b + 2, e - 1 - (b + 2));
    return Expression::Parse(inner, static_cast<int>(b + 2), out, error);
  }
  return Expression::Parse(text, 0, out, error);
}

bool CompiledValue::Compile(const Json& value, CompiledValue* out, SyntaxError* error,
                            std::string* error_path) {
  CompiledValue c;
  c.source_ = value;
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s.find("{{") != std::string::npos) {
      auto t = std::make_shared<Template>();
      if (!Template::Parse(s, t.get(), error)) {
        error_path->clear();
        return false;
      }
      c.has_templates_ = t->has_expressions();
      c.tmpl_ = std::move(t);
    }
  } else if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      CompiledValue child;
      if (!Compile(it.value(), &child, error, error_path)) {
        *error_path = error_path->empty()
                          ? it.key()
                          : it.key() + ((*error_path)[0] == '[' ? "" : ".") + *error_path;
        return false;
      }
      c.has_templates_ = c.has_templates_ || child.has_templates_;
      c.map_.emplace_back(it.key(), std::move(child));
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      CompiledValue child;
      if (!Compile(value[i], &child, error, error_path)) {
        std::string idx = absl::StrCat("[", i, "]");
        *error_path = error_path->empty() ? idx
                                          : idx + ((*error_path)[0] == '[' ? "" : ".") +
                                                *error_path;
        return false;
      }
      c.has_templates_ = c.has_templates_ || child.has_templates_;
      c.list_.push_back(std::move(child));
    }
  }
  *out = std::move(c);
  return true;
}

absl::StatusOr<Json> CompiledValue::Render(const EvalScope& scope) const {
  if (!has_templates_) return source_;
  if (tmpl_ != nullptr) return tmpl_->Render(scope);
  if (source_.is_object()) {
    Json out = Json::object();
    for (const auto& [key, child] : map_) {
      auto v = child.Render(scope);
      if (!v.ok()) return v.status();
      out[key] = std::move(*v);
    }
    return out;
  }
  Json out = Json::array();
  for (const CompiledValue& child : list_) {
    auto v = child.Render(scope);
    if (!v.ok()) return v.status();
    out.push_back(std::move(*v));
  }
  return out;
}

void CompiledValue::CollectReferences(std::vector<std::pair<std::string, Reference>>* out,
                                      const std::string& prefix) const {
  if (tmpl_ != nullptr) {
    for (const Reference& r : tmpl_->references()) out->emplace_back(prefix, r);
    return;
  }
  for (const auto& [key, child] : map_) {
    child.CollectReferences(out, prefix.empty() ? key : prefix + "." + key);
  }
  for (size_t i = 0; i < list_.size(); ++i) {
    list_[i].CollectReferences(out, absl::StrCat(prefix, "[", i, "]"));
  }
}

}  // namespace cnet::skills
