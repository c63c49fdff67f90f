#include "generate/tasks.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "generate/answer_extraction.h"

namespace resp {

Task parse_task(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (n == "gsm8k") return Task::Gsm8k;
  if (n == "mathqa") return Task::MathQA;
  throw UsageError(cat("unknown task '", name, "' (expected gsm8k or mathqa)"));
}

const char* task_name(Task t) {
  return t == Task::Gsm8k ? "gsm8k" : "mathqa";
}

const std::vector<CotExemplar>& gsm8k_cot_exemplars() {
  static const std::vector<CotExemplar> ex = {
      {"There are 15 trees in the grove. Grove workers will plant trees in the grove today. After "
       "they are done, there will be 21 trees. How many trees did the grove workers plant today?",
       "There are 15 trees originally. Then there were 21 trees after some more were planted. So "
       "there must have been 21 - 15 = 6. The answer is 6."},
      {"If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
       "parking lot?",
       "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."},
      {"Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
       "left in total?",
       "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
       "After eating 35, they had 74 - 35 = 39. The answer is 39."},
      {"Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
       "lollipops did Jason give to Denny?",
       "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave "
       "Denny 20 - 12 = 8. The answer is 8."},
      {"Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many "
       "toys does he have now?",
       "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more "
       "toys. 5 + 4 = 9. The answer is 9."},
      {"There were nine computers in the server room. Five more computers were installed each "
       "day, from monday to thursday. How many computers are now in the server room?",
       "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 "
       "* 4 = 20 computers were added. 9 + 20 is 29. The answer is 29."},
      {"Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 "
       "more. How many golf balls did he have at the end of wednesday?",
       "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After "
       "losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33."},
      {"Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
       "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has "
       "23 - 15 dollars left. 23 - 15 is 8. The answer is 8."},
  };
  return ex;
}

namespace {

const std::string& string_field(const nlohmann::json& row, const char* key, Task t) {
  auto it = row.find(key);
  if (it == row.end()) throw UsageError(cat(task_name(t), " row has no \"", key, "\" field"));
  if (!it->is_string())
    throw UsageError(cat(task_name(t), " row: \"", key, "\" must be a string, got ", it->dump()));
  return it->get_ref<const std::string&>();
}

}  // namespace

std::string task_user_text(Task t, const nlohmann::json& row) {
  if (!row.is_object()) throw UsageError(cat(task_name(t), " row must be a JSON object"));
  if (t == Task::Gsm8k) {
    const std::string& q = string_field(row, "question", t);
    if (q.find_first_not_of(" \t\r\n") == std::string::npos)
      throw UsageError("gsm8k row: empty \"question\"");
    return q;
  }
  const std::string& p = string_field(row, "Problem", t);
  if (p.find_first_not_of(" \t\r\n") == std::string::npos)
    throw UsageError("mathqa row: empty \"Problem\"");
  return "Question: " + p + "\nOptions: " + string_field(row, "options", t) + "\nAnswer:";
}

std::string task_gold(Task t, const nlohmann::json& row) {
  if (t == Task::Gsm8k) {
    const auto g = gsm8k_gold(string_field(row, "answer", t));
    if (!g) throw UsageError("gsm8k row: \"answer\" has no \"#### N\" final answer");
    return *g;
  }
  std::string c = string_field(row, "correct", t);
  std::transform(c.begin(), c.end(), c.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (c.size() != 1 || c[0] < 'a' || c[0] > 'e')
    throw UsageError(cat("mathqa row: \"correct\" must be one of a-e, got \"", c, "\""));
  return c;
}

std::string gsm8k_fewshot_text(std::string_view question, int shots) {
  const auto& ex = gsm8k_cot_exemplars();
  if (shots < 0 || shots > static_cast<int>(ex.size()))
    throw UsageError(cat("--shots for gsm8k must be in [0, ", ex.size(), "], got ", shots));
  std::string s;
  for (int i = 0; i < shots; ++i) {
    s += "Q: ";
    s += ex[static_cast<size_t>(i)].question;
    s += "\nA: ";
    s += ex[static_cast<size_t>(i)].answer;
    s += "\n\n";
  }
  s += "Q: ";
  s += question;
  s += "\nA:";
  return s;
}

std::vector<ChatMessage> gsm8k_fewshot_messages(std::string_view question, int shots,
                                                bool multiturn) {
  if (!multiturn) return {ChatMessage{"user", gsm8k_fewshot_text(question, shots)}};
  const auto& ex = gsm8k_cot_exemplars();
  if (shots < 0 || shots > static_cast<int>(ex.size()))
    throw UsageError(cat("--shots for gsm8k must be in [0, ", ex.size(), "], got ", shots));
  std::vector<ChatMessage> m;
  for (int i = 0; i < shots; ++i) {
    const CotExemplar& e = ex[static_cast<size_t>(i)];
    m.push_back({"user", cat("Q: ", e.question, "\nA:")});
    m.push_back({"assistant", e.answer});
  }
  m.push_back({"user", cat("Q: ", question, "\nA:")});
  return m;
}

std::string calibration_prompt(Task t, const nlohmann::json& row, const ChatFormat& chat,
                               Thinking thinking, const std::string& system_prompt) {
  ChatOptions o;
  o.add_generation_prompt = true;
  // RESP generates in thinking mode whenever the template has one.
  o.thinking = thinking == Thinking::Default ? Thinking::Auto : thinking;
  o.system_prompt = system_prompt;
  return chat.render({ChatMessage{"user", task_user_text(t, row)}}, o);
}

std::string eval_prompt(const EvalPromptOptions& o, const nlohmann::json& row) {
  if (o.task == Task::MathQA && o.shots != 0)
    throw UsageError(cat("mathqa is evaluated 0-shot; --shots ", o.shots, " is not supported"));
  const std::string user = task_user_text(o.task, row);
  if (o.task == Task::Gsm8k &&
      (o.shots < 0 || o.shots > static_cast<int>(gsm8k_cot_exemplars().size())))
    throw UsageError(cat("--shots for gsm8k must be in [0, 8], got ", o.shots));
  const bool fewshot = o.task == Task::Gsm8k && o.shots > 0;
  if (!o.chat) return fewshot ? gsm8k_fewshot_text(user, o.shots) : user;
  ChatOptions co;
  co.add_generation_prompt = true;
  co.thinking = o.thinking;
  co.system_prompt = o.system_prompt;
  if (fewshot)
    return o.chat->render(gsm8k_fewshot_messages(user, o.shots, o.fewshot_as_multiturn), co);
  return o.chat->render({ChatMessage{"user", user}}, co);
}

}  // namespace resp
